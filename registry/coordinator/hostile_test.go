package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// rawCall sends a request and returns the status and decoded error body.
func rawCall(t *testing.T, tc *testCoord, req *http.Request) (int, api.Error) {
	t.Helper()
	resp, err := tc.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" || e.Code == "" {
			t.Errorf("%s %s: %d with non-JSON error body %q", req.Method, req.URL.Path, resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error content type %q", req.Method, req.URL.Path, ct)
		}
	}
	return resp.StatusCode, e
}

func newReq(t *testing.T, tc *testCoord, method, path, ctype string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, tc.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req
}

// signed returns a node request signed with key and credential cred.
func signed(t *testing.T, tc *testCoord, method, path string, body []byte, cred string, key nodekey.PrivateKey, at time.Time) *http.Request {
	t.Helper()
	req := newReq(t, tc, method, path, "application/json", body)
	c, err := nodeauth.ParseCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	nodeauth.Sign(req, body, c, key, at)
	return req
}

func TestNodeAuthentication(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "alpha")
	b := tc.join(t, tok, "bravo")
	now := time.Now()
	body := []byte(`{"endpoints":["192.0.2.1:1234"]}`)
	credA, credB := a.join.Credential, b.join.Credential
	// alpha's credential with bravo's node ID: the secret does not match.
	idB, _, _ := strings.Cut(credB, ".")
	_, secretA, _ := strings.Cut(credA, ".")

	for _, tt := range []struct {
		name string
		req  func() *http.Request
	}{
		{"no credentials", func() *http.Request { return newReq(t, tc, "POST", api.PathEndpoints, "application/json", body) }},
		{"other node's key", func() *http.Request { return signed(t, tc, "POST", api.PathEndpoints, body, credA, b.key, now) }},
		{"other node's credential", func() *http.Request { return signed(t, tc, "POST", api.PathEndpoints, body, credB, a.key, now) }},
		{"own secret with other node's id", func() *http.Request {
			return signed(t, tc, "POST", api.PathEndpoints, body, idB+"."+secretA, a.key, now)
		}},
		{"stale date", func() *http.Request {
			return signed(t, tc, "POST", api.PathEndpoints, body, credA, a.key, now.Add(-10*time.Minute))
		}},
		{"future date", func() *http.Request {
			return signed(t, tc, "POST", api.PathEndpoints, body, credA, a.key, now.Add(10*time.Minute))
		}},
		{"body changed after signing", func() *http.Request {
			r := signed(t, tc, "POST", api.PathEndpoints, body, credA, a.key, now)
			r2 := newReq(t, tc, "POST", api.PathEndpoints, "application/json", []byte(`{"endpoints":["192.0.2.66:1234"]}`))
			r2.Header = r.Header.Clone()
			return r2
		}},
		{"forged signature", func() *http.Request {
			r := signed(t, tc, "POST", api.PathEndpoints, body, credA, a.key, now)
			r.Header.Set(nodeauth.HeaderSignature, strings.Repeat("A", 86))
			return r
		}},
		{"garbage authorization", func() *http.Request {
			r := newReq(t, tc, "POST", api.PathEndpoints, "application/json", body)
			r.Header.Set("Authorization", "TunnelMesh-Node no-dot-here")
			return r
		}},
		{"unknown node", func() *http.Request {
			return signed(t, tc, "POST", api.PathEndpoints, body, "n0000.secret", a.key, now)
		}},
		{"admin credential as node", func() *http.Request {
			r := newReq(t, tc, "POST", api.PathEndpoints, "application/json", body)
			r.Header.Set("Authorization", "Bearer "+tc.AdminCredential())
			return r
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, e := rawCall(t, tc, tt.req())
			if status != http.StatusUnauthorized || e.Code != api.CodeUnauthorized {
				t.Fatalf("status %d code %q (%s), want 401 unauthorized", status, e.Code, e.Error)
			}
		})
	}

	// A captured request cannot be replayed.
	req := signed(t, tc, "POST", api.PathEndpoints, body, credA, a.key, now)
	replay := newReq(t, tc, "POST", api.PathEndpoints, "application/json", body)
	replay.Header = req.Header.Clone()
	if status, _ := rawCall(t, tc, req); status != http.StatusNoContent {
		t.Fatalf("genuine request: %d, want 204", status)
	}
	if status, e := rawCall(t, tc, replay); status != http.StatusUnauthorized || !strings.Contains(e.Error, "replayed") {
		t.Fatalf("replayed request: %d %q, want 401 replayed", status, e.Error)
	}

	// None of the refused calls changed bravo or alpha beyond the one
	// genuine report.
	nm, err := b.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if eps := peerNames(nm)["alpha"].Endpoints; len(eps) != 1 || eps[0].String() != "192.0.2.1:1234" {
		t.Fatalf("alpha's endpoints = %v, want only the genuine report", eps)
	}
	if len(nm.Self.Endpoints) != 0 {
		t.Fatalf("bravo's endpoints = %v, want none", nm.Self.Endpoints)
	}
}

func TestAdminAuthentication(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{})
	a := tc.join(t, tok, "alpha")
	for _, tt := range []struct{ name, auth string }{
		{"none", ""},
		{"wrong credential", "Bearer tma1.wrong"},
		{"admin credential with another scheme", "Basic " + tc.AdminCredential()},
		{"node credential", "Bearer " + a.join.Credential},
		{"prefix of the credential", "Bearer " + tc.AdminCredential()[:10]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []*http.Request{
				newReq(t, tc, "GET", api.PathAdminNodes, "", nil),
				newReq(t, tc, "POST", api.PathAdminTokens, "application/json", []byte(`{"reusable":true}`)),
				newReq(t, tc, "DELETE", api.PathAdminNodes+"/alpha", "", nil),
			} {
				if tt.auth != "" {
					r.Header.Set("Authorization", tt.auth)
				}
				if status, e := rawCall(t, tc, r); status != 401 || e.Code != api.CodeUnauthorized {
					t.Fatalf("%s %s = %d %q, want 401", r.Method, r.URL.Path, status, e.Code)
				}
			}
		})
	}
	// A signed node request cannot reach admin calls either.
	r := signed(t, tc, "GET", api.PathAdminNodes, nil, a.join.Credential, a.key, time.Now())
	if status, _ := rawCall(t, tc, r); status != 401 {
		t.Fatalf("node-signed admin call = %d, want 401", status)
	}
	toks, err := tc.admin.Tokens(context.Background())
	if err != nil || len(toks) != 1 {
		t.Fatalf("tokens after refused admin calls = %d, %v; want 1", len(toks), err)
	}
	if nodes, _ := tc.admin.Nodes(context.Background()); len(nodes) != 1 {
		t.Fatalf("nodes after refused admin calls = %d, want 1", len(nodes))
	}
}

func TestHostileInput(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "alpha")
	key := newKey(t)
	joinBody := func(mod func(m map[string]any)) []byte {
		m := map[string]any{"protocol_version": 1, "token": tok, "name": "newnode", "public_key": key.Public().String()}
		mod(m)
		b, _ := json.Marshal(m)
		return b
	}
	manyEPs := make([]string, api.MaxEndpoints+1)
	for i := range manyEPs {
		manyEPs[i] = fmt.Sprintf("192.0.2.1:%d", 1000+i)
	}
	now := time.Now()
	for _, tt := range []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"oversized body", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", bytes.Repeat([]byte(" "), api.MaxBodyBytes+1))
		}, 413, api.CodeTooLarge},
		{"oversized chunked body", func() *http.Request {
			r := newReq(t, tc, "POST", api.PathJoin, "application/json", nil)
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(strings.Repeat("a", api.MaxBodyBytes))))
			r.ContentLength = -1
			return r
		}, 413, api.CodeTooLarge},
		{"no content type", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "", joinBody(func(map[string]any) {}))
		}, 415, api.CodeUnsupportedMedia},
		{"form content type", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/x-www-form-urlencoded", []byte("token=x"))
		}, 415, api.CodeUnsupportedMedia},
		{"malformed json", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", []byte(`{"token":`))
		}, 400, api.CodeBadRequest},
		{"empty body", func() *http.Request { return newReq(t, tc, "POST", api.PathJoin, "application/json", nil) }, 400, api.CodeBadRequest},
		{"json array", func() *http.Request { return newReq(t, tc, "POST", api.PathJoin, "application/json", []byte(`[1,2]`)) }, 400, api.CodeBadRequest},
		{"trailing data", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", append(joinBody(func(map[string]any) {}), []byte(`{}`)...))
		}, 400, api.CodeBadRequest},
		{"unknown field", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["admin"] = true }))
		}, 400, api.CodeBadRequest},
		{"bad name", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["name"] = "bad_name!" }))
		}, 400, api.CodeBadRequest},
		{"long name", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["name"] = strings.Repeat("a", 64) }))
		}, 400, api.CodeBadRequest},
		{"rsa key", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) {
				m["public_key"] = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDHr/jh2Jy4yALcK4JyWbVkPRaWmhck3IgCoeOO3z1e2dBowLh64QAM+Qb72pxekALga2oi4GvxmGv1vDEvdA5X/1ZnzwgvzqgzK8+yd3tUvPX/yWwIGDoP1y4kBUm4kt5BDtxBvcRkRp9Pjy6w+ObWnGdTgavf2ukKRoTxg=="
			}))
		}, 400, api.CodeBadRequest},
		{"missing key", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { delete(m, "public_key") }))
		}, 400, api.CodeBadRequest},
		{"small-order key", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) {
				m["public_key"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			}))
		}, 400, api.CodeBadRequest},
		{"too many endpoints", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["endpoints"] = manyEPs }))
		}, 400, api.CodeBadRequest},
		{"port zero endpoint", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["endpoints"] = []string{"192.0.2.1:0"} }))
		}, 400, api.CodeBadRequest},
		{"multicast endpoint", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["endpoints"] = []string{"224.0.0.1:5"} }))
		}, 400, api.CodeBadRequest},
		{"wrong protocol version", func() *http.Request {
			return newReq(t, tc, "POST", api.PathJoin, "application/json", joinBody(func(m map[string]any) { m["protocol_version"] = 99 }))
		}, 426, api.CodeVersion},
		{"wrong protocol header", func() *http.Request {
			r := newReq(t, tc, "GET", api.PathInfo, "", nil)
			r.Header.Set(api.ProtocolHeader, "7")
			return r
		}, 426, api.CodeVersion},
		{"wrong method", func() *http.Request { return newReq(t, tc, "GET", api.PathJoin, "", nil) }, 405, api.CodeBadRequest},
		{"unknown path", func() *http.Request { return newReq(t, tc, "GET", "/api/v1/nope", "", nil) }, 404, api.CodeNotFound},
		{"bad since", func() *http.Request {
			return signed(t, tc, "GET", api.PathNetmap+"?since=-1", nil, a.join.Credential, a.key, now)
		}, 400, api.CodeBadRequest},
		{"bad wait", func() *http.Request {
			return signed(t, tc, "GET", api.PathNetmap+"?wait=forever", nil, a.join.Credential, a.key, now)
		}, 400, api.CodeBadRequest},
		{"node endpoints bad json", func() *http.Request {
			return signed(t, tc, "POST", api.PathEndpoints, []byte(`{"endpoints":"x"}`), a.join.Credential, a.key, now)
		}, 400, api.CodeBadRequest},
		{"node endpoints bad address", func() *http.Request {
			return signed(t, tc, "POST", api.PathEndpoints, []byte(`{"endpoints":["0.0.0.0:1"]}`), a.join.Credential, a.key, now)
		}, 400, api.CodeBadRequest},
		{"admin bad tag", func() *http.Request {
			r := newReq(t, tc, "POST", api.PathAdminTokens, "application/json", []byte(`{"tags":["no spaces"]}`))
			r.Header.Set("Authorization", "Bearer "+tc.AdminCredential())
			return r
		}, 400, api.CodeBadRequest},
		{"admin negative expiry", func() *http.Request {
			r := newReq(t, tc, "POST", api.PathAdminTokens, "application/json", []byte(`{"expiry":"-1h"}`))
			r.Header.Set("Authorization", "Bearer "+tc.AdminCredential())
			return r
		}, 400, api.CodeBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, e := rawCall(t, tc, tt.req())
			if status != tt.status || e.Code != tt.code {
				t.Fatalf("status %d code %q (%s), want %d %q", status, e.Code, e.Error, tt.status, tt.code)
			}
		})
	}
	// Nothing changed: one node, one token, with one use.
	nodes, _ := tc.admin.Nodes(context.Background())
	toks, _ := tc.admin.Tokens(context.Background())
	if len(nodes) != 1 || len(toks) != 1 || toks[0].Uses != 1 {
		t.Fatalf("after hostile input: %d nodes, %d tokens (%+v); want 1, 1 with 1 use", len(nodes), len(toks), toks)
	}
	if !bytes.Contains(get(t, tc, api.PathMetrics), []byte(`code="413"`)) {
		t.Errorf("413s not in request metrics")
	}
}
