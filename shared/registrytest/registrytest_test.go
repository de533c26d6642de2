package registrytest_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/shared/registrytest"
)

func mustKey(t *testing.T) nodekey.PrivateKey {
	t.Helper()
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJoinWatchRemove(t *testing.T) {
	f := registrytest.New(netip.Prefix{})
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hc := regclient.NewHTTPClient(f.Pin)
	key := mustKey(t)
	resp, err := regclient.Join(ctx, hc, f.URL, api.JoinRequest{Token: f.CreateToken(false), Name: "alpha", PublicKey: key.Public()})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if resp.IP != netip.MustParseAddr("100.64.0.1") {
		t.Errorf("IP = %s, want 100.64.0.1", resp.IP)
	}
	// A single-use token is spent.
	tok := f.CreateToken(false)
	if _, err := regclient.Join(ctx, hc, f.URL, api.JoinRequest{Token: tok, Name: "beta", PublicKey: mustKey(t).Public()}); err != nil {
		t.Fatalf("Join beta: %v", err)
	}
	if _, err := regclient.Join(ctx, hc, f.URL, api.JoinRequest{Token: tok, Name: "gamma", PublicKey: mustKey(t).Public()}); !regclient.IsCode(err, api.CodeTokenInvalid) {
		t.Fatalf("second use of token: err = %v, want %s", err, api.CodeTokenInvalid)
	}

	c, err := regclient.New(regclient.Credentials{Coordinator: f.URL, Pin: f.Pin, Credential: resp.Credential, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	nm, err := c.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatalf("Netmap: %v", err)
	}
	if len(nm.Peers) != 1 || nm.Peers[0].Name != "beta" {
		t.Fatalf("peers = %+v, want beta", nm.Peers)
	}
	if _, err := c.Netmap(ctx, nm.Version, 100*time.Millisecond); !errors.Is(err, regclient.ErrNotModified) {
		t.Fatalf("Netmap with no change: err = %v, want ErrNotModified", err)
	}

	got := make(chan *api.Netmap, 10)
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(wctx, nm.Version, func(n *api.Netmap) error { got <- n; return nil }, nil)
	}()
	f.RemoveNode("beta")
	select {
	case n := <-got:
		if len(n.Peers) != 0 {
			t.Errorf("after removal peers = %+v, want none", n.Peers)
		}
	case <-time.After(time.Minute):
		t.Fatal("watch did not see the removal within a minute")
	}
	wcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}

	// Another node's credential with this node's key does not authenticate.
	bad, _ := regclient.New(regclient.Credentials{Coordinator: f.URL, Pin: f.Pin, Credential: resp.Credential, Key: mustKey(t)})
	if _, err := bad.Netmap(ctx, 0, 0); !regclient.IsCode(err, api.CodeUnauthorized) {
		t.Errorf("wrong key: err = %v, want unauthorized", err)
	}
}

func TestPinMismatch(t *testing.T) {
	f := registrytest.New(netip.Prefix{})
	defer f.Close()
	hc := regclient.NewHTTPClient("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if _, err := regclient.Info(context.Background(), hc, f.URL); err == nil {
		t.Fatal("Info with a wrong pin succeeded")
	}
	if _, err := regclient.Info(context.Background(), regclient.NewHTTPClient(f.Pin), f.URL); err != nil {
		t.Fatalf("Info with the right pin: %v", err)
	}
}
