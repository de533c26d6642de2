// Package e2e holds dockerwatch's end-to-end test against the real Docker
// engine: the tunnelmesh-dockerwatch binary runs in a network namespace
// standing in for the agent's (attached to a Docker network the test
// creates, with the node's mesh address on a link to a peer namespace), and
// the test checks from the peer what the forward reaches while containers
// start, stop and come and go across kills of dockerwatch. It needs root,
// Docker, nft and ip: missing, it is skipped, or fails under CI=true.
package e2e
