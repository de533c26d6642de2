// Package localapi is how the tunnelmesh CLI talks to the running node: HTTP
// over a unix socket in the node's state directory (mode 0600 in a 0700
// directory, so only root, or the user running the node, can use it). It
// holds the server and the CLI's client; the wire contract (paths and JSON
// bodies) is shared/nodeapi's, which tunnelmesh-dockerwatch uses too.
//
//	GET  /v1/status              -> Status
//	POST /v1/ping?peer=NAME|IP   -> PingResult (or Error with 4xx/5xx)
//	PUT  /v1/services            ServicesRequest -> ServicesRequest (see PathServices)
//
// Every body is JSON; errors are {"error": "..."}.
package localapi

import "github.com/tunnelmesh/tunnelmesh/shared/nodeapi"

// Paths of the local API (nodeapi's).
const (
	PathStatus   = nodeapi.PathStatus
	PathPing     = nodeapi.PathPing
	PathServices = nodeapi.PathServices
)

// The local API's bodies are nodeapi's types; these names keep the agent's
// callers short.
type (
	Status          = nodeapi.Status
	Coordinator     = nodeapi.Coordinator
	Peer            = nodeapi.Peer
	PingResult      = nodeapi.PingResult
	Error           = nodeapi.Error
	ServicesRequest = nodeapi.ServicesRequest
)
