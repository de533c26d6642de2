package server

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// server and connection a test starts must be gone at the end. Two
// goroutines of go-nfs-client are exempt: its per-mount cache cleaner never
// stops, and its receive loop may reconnect during Close (it checks closed
// before reconnecting, not after).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/willscott/go-nfs-client/nfs.(*Target).cleanupCache"),
		goleak.IgnoreAnyFunction("github.com/willscott/go-nfs-client/nfs/rpc.(*Client).receive"))
}
