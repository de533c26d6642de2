package nodeauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

var update = flag.Bool("update", false, "rewrite golden files")

func seedKey(t *testing.T, b byte) nodekey.PrivateKey {
	t.Helper()
	k, err := nodekey.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	goldenPin   = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	goldenToken = "tm1.dG9rZW4taWQx.c2VjcmV0LXNlY3JldC1zZWNyZXQtc2Vj." + goldenPin
)

// TestJoinGolden pins the wire form of a signed join body: a change to the
// contract or to the signed payload shows up as a diff of
// testdata/join.golden.json.
func TestJoinGolden(t *testing.T) {
	if _, err := jointoken.Parse(goldenToken); err != nil {
		t.Fatal(err)
	}
	req := api.JoinRequest{ProtocolVersion: api.ProtocolVersion, Token: goldenToken, Name: "alpha",
		Services: []api.Service{{Name: "dns", Protocol: "udp", Port: 53}}}
	if err := SignJoin(&req, seedKey(t, 1), time.UnixMilli(1_800_000_000_000)); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/join.golden.json"
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("join JSON differs from %s:\n%s", golden, got)
	}
	var back api.JoinRequest
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	tok, _ := jointoken.Parse(back.Token)
	if err := VerifyJoin(&back, tok.ID, tok.Pin, time.UnixMilli(1_800_000_001_000), nil); err != nil {
		t.Fatalf("VerifyJoin(golden) = %v", err)
	}
}

func TestVerifyJoin(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key, other := seedKey(t, 1), seedKey(t, 2)
	tok, err := jointoken.New(goldenPin)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(mod func(*api.JoinRequest)) api.JoinRequest {
		r := api.JoinRequest{Token: tok.String(), Name: "alpha"}
		if err := SignJoin(&r, key, now); err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	for _, tt := range []struct {
		name      string
		req       api.JoinRequest
		tokenID   string
		pin       string
		at        time.Time
		want      error
		wantValid bool
	}{
		{name: "valid", req: signed(nil), wantValid: true},
		{name: "unsigned", req: signed(func(r *api.JoinRequest) { r.Signature = nil }), want: ErrJoinUnsigned},
		{name: "short signature", req: signed(func(r *api.JoinRequest) { r.Signature = r.Signature[:10] }), want: ErrBadSig},
		{name: "another node's key", req: signed(func(r *api.JoinRequest) { r.PublicKey = other.Public() }), want: ErrBadSig},
		{name: "signed by another key", req: signed(func(r *api.JoinRequest) {
			r.Signature = other.Sign(JoinPayload(tok.ID, tok.Pin, r.Name, r.PublicKey, r.Timestamp))
		}), want: ErrBadSig},
		{name: "renamed after signing", req: signed(func(r *api.JoinRequest) { r.Name = "beta" }), want: ErrBadSig},
		{name: "timestamp changed", req: signed(func(r *api.JoinRequest) { r.Timestamp++ }), want: ErrBadSig},
		{name: "other token", req: signed(nil), tokenID: "b3RoZXItdG9r", want: ErrBadSig},
		{name: "other registry", req: signed(nil), pin: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", want: ErrBadSig},
		{name: "stale", req: signed(nil), at: now.Add(MaxSkew + time.Second), want: ErrStale},
		{name: "future", req: signed(nil), at: now.Add(-MaxSkew - time.Second), want: ErrStale},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, pin, at := tok.ID, tok.Pin, now
			if tt.tokenID != "" {
				id = tt.tokenID
			}
			if tt.pin != "" {
				pin = tt.pin
			}
			if !tt.at.IsZero() {
				at = tt.at
			}
			err := VerifyJoin(&tt.req, id, pin, at, NewReplayCache())
			if tt.wantValid != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("VerifyJoin = %v, want %v", err, tt.want)
			}
		})
	}
	cache := NewReplayCache()
	r := signed(nil)
	if err := VerifyJoin(&r, tok.ID, tok.Pin, now, cache); err != nil {
		t.Fatal(err)
	}
	if err := VerifyJoin(&r, tok.ID, tok.Pin, now, cache); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replayed join = %v, want ErrReplayed", err)
	}
	if err := SignJoin(&api.JoinRequest{Token: "tm1.bad"}, key, now); err == nil {
		t.Fatal("SignJoin with a malformed token succeeded")
	}
}
