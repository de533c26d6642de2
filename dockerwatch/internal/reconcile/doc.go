// Package reconcile keeps the node's exposure of containers equal to what
// the engine's container list asks for.
//
// Run opens the engine's event stream first and then lists the containers,
// so that no change between the two is missed; every container event
// (start, die, stop, pause, unpause, destroy, ...; a label change is a new
// container) schedules a full resync after a short debounce, and so do a
// timer (Config.Resync) and any failure (retried after Config.Retry,
// doubling up to 30 s while failures go on). A
// resync computes the desired set from the whole list (package desired),
// rewrites the forward when it differs from the one applied (or after a
// failure), and publishes the service records to the agent, which ignores
// an unchanged set. The agent's copy is re-sent every Config.Republish, so
// a restarted agent has it again within that time, and the agent, which
// expires a set not re-sent for 20 s, keeps it only while dockerwatch runs.
// Each re-send first asks the agent's status: while the node is removed
// from the mesh (publish.ErrNodeRemoved) the forward and the services are
// withdrawn once and resyncs fail (stage "agent", retried with the
// backoff) until the node is back.
//
// No state is carried from one resync to the next beyond what was applied,
// so a restart of dockerwatch, the agent or the Docker daemon converges to
// the same result as a fresh start: the forward table is replaced whole and
// the agent's set is replaced whole. When Run returns, it withdraws both.
//
// Run is the only goroutine; it owns the event stream and stops it.
package reconcile
