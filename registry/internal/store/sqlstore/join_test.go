package sqlstore

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestAdmit(t *testing.T) {
	secret := [32]byte{1}
	base := TokenRow{ID: "t1", SecretHash: secret[:], Tags: `["db"]`, ExpiresAt: now.Add(time.Hour).UnixNano()}
	for _, tc := range []struct {
		name   string
		row    func(*TokenRow)
		at     time.Time
		secret [32]byte
		want   string // "" admits
	}{
		{name: "fresh single-use", row: func(*TokenRow) {}, at: now, secret: secret},
		{name: "used reusable", row: func(r *TokenRow) { r.Reusable, r.Uses = true, 3 }, at: now, secret: secret},
		{name: "no expiry", row: func(r *TokenRow) { r.ExpiresAt = 0 }, at: now.Add(100 * time.Hour), secret: secret},
		{name: "wrong secret", row: func(*TokenRow) {}, at: now, secret: [32]byte{2}, want: "unknown, used, expired or revoked"},
		{name: "revoked", row: func(r *TokenRow) { r.Revoked = true }, at: now, secret: secret, want: "revoked"},
		{name: "expired at the instant", row: func(*TokenRow) {}, at: now.Add(time.Hour), secret: secret, want: "expired"},
		{name: "used single-use", row: func(r *TokenRow) { r.Uses = 1 }, at: now, secret: secret, want: "already used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.row(&r)
			tags, err := r.Admit(store.JoinParams{TokenID: "t1", TokenSecretHash: tc.secret, Now: tc.at})
			if tc.want == "" {
				if err != nil || !reflect.DeepEqual(tags, []string{"db"}) {
					t.Fatalf("Admit = %v, %v; want tags [db]", tags, err)
				}
				return
			}
			if !errors.Is(err, store.ErrTokenInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Admit = %v, want ErrTokenInvalid: %s", err, tc.want)
			}
		})
	}
}

func TestJoinedNode(t *testing.T) {
	ip := netip.MustParseAddr("10.1.0.3")
	p := store.JoinParams{TokenID: "t1", Name: "a", PublicKey: key(1), NewNodeID: "new", CredentialHash: []byte("c"),
		Services: []api.Service{}, Now: now}
	n := JoinedNode(p, nil, []string{"db"}, ip)
	want := store.Node{ID: "new", Name: "a", IP: ip, PublicKey: key(1), SecretHash: []byte("c"), Tags: []string{"db"},
		TokenID: "t1", CreatedAt: now, LastSeen: now}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("JoinedNode(new key) = %+v,\nwant %+v", n, want)
	}

	old := &store.Node{ID: "old", CreatedAt: now.Add(-time.Hour), HomeRelay: "r-a"}
	n = JoinedNode(p, old, nil, ip)
	if n.ID != "old" || !n.CreatedAt.Equal(old.CreatedAt) || n.HomeRelay != "r-a" || !n.LastSeen.Equal(now) {
		t.Fatalf("JoinedNode(rejoin) = %+v; want old's ID, creation time and home relay", n)
	}
	p.HomeRelay = "r-b"
	if n = JoinedNode(p, old, nil, ip); n.HomeRelay != "r-b" {
		t.Fatalf("JoinedNode(rejoin with a home relay) = %q, want r-b", n.HomeRelay)
	}
}
