package nodeauth

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

func TestVerifyPeer(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := newKey(t)
	body := []byte(`{}`)
	peerSigned := func(method, target string, at time.Time) *http.Request {
		r := httptest.NewRequest(method, target, bytes.NewReader(body))
		SignPeer(r, body, "n1", key, at)
		return r
	}
	tests := []struct {
		name string
		req  func() *http.Request
		body []byte
		want error
	}{
		{"valid", func() *http.Request { return peerSigned("POST", "/v1/credentials", now) }, body, nil},
		{"body changed", func() *http.Request { return peerSigned("POST", "/v1/credentials", now) }, []byte(`{"x":1}`), ErrBadSig},
		{"stale", func() *http.Request { return peerSigned("POST", "/v1/credentials", now.Add(-3*time.Minute)) }, body, ErrStale},
		{"path changed", func() *http.Request {
			r := peerSigned("POST", "/v1/credentials", now)
			r.URL.Path = "/v1/other"
			return r
		}, body, ErrBadSig},
		{"registry request replayed to a service", func() *http.Request {
			r := httptest.NewRequest("POST", "/v1/credentials", bytes.NewReader(body))
			Sign(r, body, Credential{NodeID: "n1", Secret: "s"}, key, now)
			r.Header.Set("Authorization", PeerScheme+" n1")
			return r
		}, body, ErrBadSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParsePeer(tt.req(), tt.body)
			if err != nil {
				t.Fatalf("ParsePeer: %v", err)
			}
			if q.NodeID != "n1" {
				t.Errorf("NodeID = %q, want n1", q.NodeID)
			}
			if err := q.Verify(key.Public(), now, NewReplayCache()); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		q, err := ParsePeer(peerSigned("POST", "/v1/credentials", now), body)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Verify(newKey(t).Public(), now, nil); !errors.Is(err, ErrBadSig) {
			t.Errorf("Verify = %v, want %v", err, ErrBadSig)
		}
	})
	t.Run("replay", func(t *testing.T) {
		r := peerSigned("POST", "/v1/credentials", now)
		cache := NewReplayCache()
		for i, want := range []error{nil, ErrReplayed} {
			q, err := ParsePeer(r, body)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Verify(key.Public(), now, cache); !errors.Is(err, want) {
				t.Errorf("attempt %d: Verify = %v, want %v", i, err, want)
			}
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, auth := range []string{"", "TunnelMesh-Node n1.s", PeerScheme + " ", "Bearer x"} {
			r := peerSigned("POST", "/v1/credentials", now)
			r.Header.Set("Authorization", auth)
			if _, err := ParsePeer(r, body); err == nil {
				t.Errorf("ParsePeer(Authorization %q) = nil error", auth)
			}
		}
	})
}

func FuzzParsePeer(f *testing.F) {
	f.Add(PeerScheme+" n1", "1700000000000", "AAAAAAAAAAAAAAAAAAAAAA", "AAAA")
	f.Add(PeerScheme+" ", "x", "", "")
	f.Fuzz(func(t *testing.T, auth, date, nonce, sig string) {
		r := httptest.NewRequest("POST", "/v1/credentials", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set(HeaderDate, date)
		r.Header.Set(HeaderNonce, nonce)
		r.Header.Set(HeaderSignature, sig)
		q, err := ParsePeer(r, nil)
		if err != nil {
			return
		}
		if q.NodeID == "" {
			t.Fatal("parsed a request without a node ID")
		}
		// Whatever parses must still fail verification under a random key.
		k, _ := nodekey.Generate()
		if q.Verify(k.Public(), q.Date, nil) == nil {
			t.Fatal("forged request verified")
		}
	})
}
