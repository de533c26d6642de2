// Package policy is TunnelMesh's policy as code: it parses the mesh's policy
// file (YAML: groups, tags, rules and tests), checks it, runs its tests
// offline, compiles it into each node's inbound api.Filter and shows what a
// change would do to which nodes.
//
// The model is default deny and allow-only: a packet from one node to
// another passes when some rule lets its source reach its destination on
// its protocol and port. Rules are a set, so their order does not matter.
//
// The registry compiles the policy for each node whenever the policy or the
// mesh changes, and sends every node only the rules whose destination
// includes it, with sources resolved to the /32s of the nodes they name.
//
// The package has no registry dependencies so that the tunnelmesh CLI can
// validate, test and diff a policy file offline. README.md documents the
// file format.
package policy
