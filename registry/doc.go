// Package registry is the TunnelMesh coordinator's control plane.
package registry
