package allowset

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

func TestFollowTracksTheNetmap(t *testing.T) {
	f := registrytest.New(netip.Prefix{})
	defer f.Close()
	self, peerA, peerB := sshtest.Key(t), sshtest.Key(t), sshtest.Key(t)
	creds, _, err := f.AddNode("gw", self)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.AddNode("a", peerA); err != nil {
		t.Fatal(err)
	}
	rc, err := regclient.New(creds)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var cur []nodekey.PublicKey
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, rc, func(k []nodekey.PublicKey) { mu.Lock(); cur = k; mu.Unlock() }, sshtest.Quiet)
	}()
	has := func(want ...nodekey.PublicKey) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(cur) != len(want) {
				return false
			}
			for _, w := range want {
				if !slices.Contains(cur, w) {
					return false
				}
			}
			return true
		}
	}
	daemontest.Eventually(t, 10*time.Second, "allow-set {a}", has(peerA.Public()))
	if _, _, err := f.AddNode("b", peerB); err != nil {
		t.Fatal(err)
	}
	daemontest.Eventually(t, 10*time.Second, "allow-set {a, b}", has(peerA.Public(), peerB.Public()))
	f.RemoveNode("a")
	daemontest.Eventually(t, 10*time.Second, "allow-set {b}", has(peerB.Public()))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow after cancel = %v, want nil", err)
	}
}
