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

func newKey(t *testing.T) nodekey.PrivateKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signed(t *testing.T, method, target string, body []byte, cred Credential, key nodekey.PrivateKey, at time.Time) *http.Request {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	Sign(r, body, cred, key, at)
	return r
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := newKey(t)
	cred := Credential{NodeID: "n1", Secret: "s3cret"}
	h := cred.SecretHash()
	body := []byte(`{"endpoints":[]}`)

	tests := []struct {
		name   string
		req    func() *http.Request
		body   []byte
		secret []byte
		pub    nodekey.PublicKey
		want   error
	}{
		{"valid", func() *http.Request { return signed(t, "POST", "/api/v1/node/endpoints", body, cred, key, now) }, body, h[:], key.Public(), nil},
		{"body changed", func() *http.Request { return signed(t, "POST", "/api/v1/node/endpoints", body, cred, key, now) }, []byte(`{}`), h[:], key.Public(), ErrBadSig},
		{"wrong key", func() *http.Request { return signed(t, "POST", "/x", body, cred, newKey(t), now) }, body, h[:], key.Public(), ErrBadSig},
		{"wrong secret", func() *http.Request {
			return signed(t, "POST", "/x", body, Credential{NodeID: "n1", Secret: "guess"}, key, now)
		}, body, h[:], key.Public(), ErrBadSecret},
		{"stale", func() *http.Request { return signed(t, "POST", "/x", body, cred, key, now.Add(-3*time.Minute)) }, body, h[:], key.Public(), ErrStale},
		{"future", func() *http.Request { return signed(t, "POST", "/x", body, cred, key, now.Add(3*time.Minute)) }, body, h[:], key.Public(), ErrStale},
		{"path changed", func() *http.Request {
			r := signed(t, "GET", "/api/v1/node/netmap?since=1", nil, cred, key, now)
			r.URL.RawQuery = "since=2"
			return r
		}, nil, h[:], key.Public(), ErrBadSig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.req(), tt.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := q.Verify(tt.secret, tt.pub, now, NewReplayCache()); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := newKey(t)
	cred := Credential{NodeID: "n1", Secret: "s3cret"}
	h := cred.SecretHash()
	cache := NewReplayCache()
	r := signed(t, "POST", "/api/v1/node/heartbeat", nil, cred, key, now)
	for i, want := range []error{nil, ErrReplayed} {
		q, err := Parse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Verify(h[:], key.Public(), now, cache); !errors.Is(err, want) {
			t.Errorf("attempt %d: Verify = %v, want %v", i, err, want)
		}
	}
}

// TestSameMillisecond: two identical requests signed in the same
// millisecond are both accepted (the nonce tells them apart); a copy of
// either is still a replay.
func TestSameMillisecond(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	key := newKey(t)
	cred := Credential{NodeID: "n1", Secret: "s3cret"}
	h := cred.SecretHash()
	cache := NewReplayCache()
	r1 := signed(t, "POST", "/api/v1/node/heartbeat", []byte("{}"), cred, key, now)
	r2 := signed(t, "POST", "/api/v1/node/heartbeat", []byte("{}"), cred, key, now)
	for i, tc := range []struct {
		r    *http.Request
		want error
	}{{r1, nil}, {r2, nil}, {r1, ErrReplayed}} {
		q, err := Parse(tc.r, []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Verify(h[:], key.Public(), now, cache); !errors.Is(err, tc.want) {
			t.Errorf("request %d: Verify = %v, want %v", i, err, tc.want)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    error
	}{
		{"none", nil, ErrMissing},
		{"bearer", map[string]string{"Authorization": "Bearer x"}, ErrMalformed},
		{"no dot", map[string]string{"Authorization": "TunnelMesh-Node abc"}, ErrMalformed},
		{"bad date", map[string]string{"Authorization": "TunnelMesh-Node a.b", HeaderDate: "yesterday"}, ErrMalformed},
		{"no nonce", map[string]string{"Authorization": "TunnelMesh-Node a.b", HeaderDate: "1"}, ErrMalformed},
		{"bad sig", map[string]string{"Authorization": "TunnelMesh-Node a.b", HeaderDate: "1", HeaderNonce: "AAAAAAAAAAAAAAAAAAAAAA", HeaderSignature: "!!"}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if _, err := Parse(r, nil); !errors.Is(err, tt.want) {
				t.Errorf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("TunnelMesh-Node a.b", "1700000000000", "AAAA")
	f.Fuzz(func(t *testing.T, auth, date, sig string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set(HeaderDate, date)
		r.Header.Set(HeaderNonce, "AAAAAAAAAAAAAAAAAAAAAA")
		r.Header.Set(HeaderSignature, sig)
		q, err := Parse(r, nil)
		if err != nil {
			return
		}
		// Whatever parses must still fail verification under a random key.
		k, _ := nodekey.Generate()
		h := q.Credential.SecretHash()
		if q.Verify(h[:], k.Public(), q.Date, nil) == nil {
			t.Fatal("forged request verified")
		}
	})
}
