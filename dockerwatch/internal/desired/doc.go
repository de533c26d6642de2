// Package desired computes, from the engine's container list, the set of
// services dockerwatch exposes: a pure function of the list, the config's
// auto_publish, the networks the node's namespace reaches and its default
// gateway, so that the same list always yields the same set (a restart of
// dockerwatch, the agent or the daemon is a recomputation, never a replay
// of history).
//
// A container is exposed when it runs (not paused, not restarting) and
// either carries the label tunnelmesh.expose ("8080/tcp,5353/udp"; a bare
// port is tcp; the same port on the node's mesh address forwards to it), or
// auto_publish is on and it publishes host ports (each published host port
// on the node's mesh address forwards to the container's port). Its
// service name is the label tunnelmesh.name, else the container name made
// into a DNS label; tunnelmesh.allow ("tag:web,group:devs") narrows who may
// reach it. It is forwarded to its address on a network the namespace is
// on; on no such network, through the Docker host (Options.Host, the
// namespace's default gateway) to the host port it publishes, when every
// port it exposes is published on an address the host serves to the
// namespace. Everything else is left out, and every container that asked
// to be exposed but cannot be gets a Skip saying why (host network, no
// reachable network and no usable published port, a bad label, a port or
// name already taken).
package desired
