package registrytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
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
	resp, err := regclient.Join(ctx, hc, f.URL, api.JoinRequest{Token: f.CreateToken(false), Name: "alpha", PublicKey: key.Public()}, key)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if resp.IP != netip.MustParseAddr("100.64.0.1") {
		t.Errorf("IP = %s, want 100.64.0.1", resp.IP)
	}
	// A single-use token is spent.
	tok := f.CreateToken(false)
	if _, err := regclient.Join(ctx, hc, f.URL, api.JoinRequest{Token: tok, Name: "beta"}, mustKey(t)); err != nil {
		t.Fatalf("Join beta: %v", err)
	}
	if _, err := regclient.Join(ctx, hc, f.URL, api.JoinRequest{Token: tok, Name: "gamma"}, mustKey(t)); !regclient.IsCode(err, api.CodeTokenInvalid) {
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

// TestJoinNeedsProof: the fake, like the registry, refuses a join that does
// not prove the node key, so another node's public key cannot be joined.
func TestJoinNeedsProof(t *testing.T) {
	f := registrytest.New(netip.Prefix{})
	defer f.Close()
	victim, attacker := mustKey(t), mustKey(t)
	if _, _, err := f.AddNode("victim", victim); err != nil {
		t.Fatal(err)
	}
	tok := f.CreateToken(true)
	for _, tt := range []struct {
		name string
		mod  func(*api.JoinRequest)
		code string
	}{
		{"unsigned", func(r *api.JoinRequest) { r.Signature, r.Timestamp = nil, 0 }, api.CodeBadRequest},
		{"another node's key", func(r *api.JoinRequest) { r.PublicKey = victim.Public() }, api.CodeUnauthorized},
	} {
		req := api.JoinRequest{ProtocolVersion: api.ProtocolVersion, Token: tok, Name: "evil"}
		if err := nodeauth.SignJoin(&req, attacker, time.Now()); err != nil {
			t.Fatal(err)
		}
		tt.mod(&req)
		body, _ := json.Marshal(req)
		hr, _ := http.NewRequest("POST", f.URL+api.PathJoin, bytes.NewReader(body))
		hr.Header.Set("Content-Type", "application/json")
		resp, err := regclient.NewHTTPClient(f.Pin).Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		err = regclient.DecodeResponse(resp, 1<<20, nil)
		resp.Body.Close()
		if !regclient.IsCode(err, tt.code) {
			t.Errorf("%s: join = %v, want %s", tt.name, err, tt.code)
		}
	}
	for _, n := range f.Nodes() {
		if n.Name != "victim" {
			t.Fatalf("nodes after refused joins: %+v", f.Nodes())
		}
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
