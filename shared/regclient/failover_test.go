package regclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

type handler = func(w http.ResponseWriter, r *http.Request)

// replica is a fake registry replica counting the requests it got.
type replica struct {
	srv    *httptest.Server
	hits   atomic.Int32
	answer atomic.Pointer[handler] // nil: a netmap with version 1
}

func newReplica(t *testing.T, answer handler) *replica {
	t.Helper()
	rp := &replica{}
	rp.set(answer)
	rp.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.hits.Add(1)
		if h := rp.answer.Load(); h != nil {
			(*h)(w, r)
			return
		}
		writeNetmap(w, 1, nil)
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

// set makes h the replica's answer (nil: a netmap with version 1).
func (rp *replica) set(h handler) {
	if h == nil {
		rp.answer.Store(nil)
		return
	}
	rp.answer.Store(&h)
}

// hang is a handler that never answers; its requests end when the client
// gives up (the body is read, so the server notices the client leaving).
func hang(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// writeNetmap answers a netmap of the given version listing registries.
func writeNetmap(w http.ResponseWriter, version uint64, registries []string) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"version": version, "registries": registries})
}

// stopped is the URL of a replica that no longer accepts connections.
func stopped(t *testing.T) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func testClient(t *testing.T, rp *replica, base string, others ...string) *Client {
	t.Helper()
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	// httptest's TLS servers share one certificate: rp's client trusts
	// them all, as a pin trusts every replica of a mesh.
	c := &Client{BaseURL: base, HTTP: rp.srv.Client(), Key: k}
	c.SetReplicas(others)
	return c
}

func status(code int) handler {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(api.Error{Error: "x", Code: "x"})
	}
}

// A failing replica (stopped, 5xx, cut short, silent) makes the call go to
// the next one, which stays in use; the failed one is not asked again.
func TestFailoverToNextReplica(t *testing.T) {
	tests := []struct {
		name string
		down func(t *testing.T) (url string, hits func() int32)
	}{
		{"connection refused", func(t *testing.T) (string, func() int32) { return stopped(t), func() int32 { return 0 } }},
		{"503", func(t *testing.T) (string, func() int32) {
			rp := newReplica(t, status(http.StatusServiceUnavailable))
			return rp.srv.URL, rp.hits.Load
		}},
		{"500 text", func(t *testing.T) (string, func() int32) {
			rp := newReplica(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
			return rp.srv.URL, rp.hits.Load
		}},
		{"connection lost", func(t *testing.T) (string, func() int32) {
			rp := newReplica(t, func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			})
			return rp.srv.URL, rp.hits.Load
		}},
		{"no answer within the attempt timeout", func(t *testing.T) (string, func() int32) {
			rp := newReplica(t, hang)
			return rp.srv.URL, rp.hits.Load
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := newReplica(t, nil)
			bad, badHits := tt.down(t)
			c := testClient(t, good, bad, good.srv.URL)
			c.AttemptTimeout = 500 * time.Millisecond
			nm, err := c.Netmap(context.Background(), 0, 0)
			if err != nil || nm.Version != 1 {
				t.Fatalf("Netmap = %+v, %v; want version 1 from the second replica", nm, err)
			}
			if c.Current() != good.srv.URL {
				t.Fatalf("Current() = %s, want %s", c.Current(), good.srv.URL)
			}
			before := badHits()
			if err := c.Heartbeat(context.Background()); err != nil {
				t.Fatalf("Heartbeat = %v", err)
			}
			if got := badHits(); got != before || good.hits.Load() != 2 {
				t.Fatalf("after failing over: failed replica asked %d more times, good one %d times; want 0 and 2", got-before, good.hits.Load())
			}
		})
	}
}

// An answer about the request (4xx, 304) is the mesh's answer: the client
// returns it and stays on the replica.
func TestNoFailoverOnAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer handler
		check  func(error) bool
	}{
		{"401", status(http.StatusUnauthorized), func(err error) bool { return apiStatusOf(err) == 401 }},
		{"404", status(http.StatusNotFound), func(err error) bool { return apiStatusOf(err) == 404 }},
		{"429", status(http.StatusTooManyRequests), func(err error) bool { return apiStatusOf(err) == 429 }},
		{"304", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) },
			func(err error) bool { return errors.Is(err, ErrNotModified) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := newReplica(t, tt.answer)
			other := newReplica(t, nil)
			c := testClient(t, first, first.srv.URL, other.srv.URL)
			_, err := c.Netmap(context.Background(), 1, time.Second)
			if !tt.check(err) || IsFailover(err) {
				t.Fatalf("Netmap = %v, want the first replica's %s", err, tt.name)
			}
			if other.hits.Load() != 0 || c.Current() != first.srv.URL {
				t.Fatalf("other replica asked %d times, Current() = %s; want 0 and the first", other.hits.Load(), c.Current())
			}
		})
	}
}

func apiStatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// With every replica down a call tries each once and fails with the
// last one's error; the next call starts again, and a replica that comes
// back is used.
func TestFailoverAllDown(t *testing.T) {
	a := newReplica(t, status(http.StatusBadGateway))
	b := newReplica(t, status(http.StatusServiceUnavailable))
	c := testClient(t, a, a.srv.URL, b.srv.URL)
	err := c.Heartbeat(context.Background())
	if !IsFailover(err) || apiStatusOf(err) != 503 {
		t.Fatalf("Heartbeat = %v, want B's 503 as a failover error", err)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 1 {
		t.Fatalf("replicas asked %d and %d times, want once each", a.hits.Load(), b.hits.Load())
	}
	// B failed last: the next call starts at A, which is back.
	a.set(nil)
	if _, err := c.Netmap(context.Background(), 0, 0); err != nil {
		t.Fatalf("Netmap after A came back = %v", err)
	}
	if c.Current() != a.srv.URL || b.hits.Load() != 1 {
		t.Fatalf("Current() = %s, B asked %d times; want A and once", c.Current(), b.hits.Load())
	}
}

// The replicas a netmap lists become the client's: when the replica it
// joined through stops, the next call goes to one of them.
func TestReplicasFromNetmap(t *testing.T) {
	b := newReplica(t, nil)
	var a *replica
	a = newReplica(t, func(w http.ResponseWriter, r *http.Request) {
		writeNetmap(w, 7, []string{a.srv.URL, "http://plain.example", "https://x.example/path", b.srv.URL + "/", b.srv.URL})
	})
	c := testClient(t, a, a.srv.URL)
	if _, err := c.Netmap(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Replicas(), []string{a.srv.URL, b.srv.URL}; !slices.Equal(got, want) {
		t.Fatalf("Replicas() = %v, want %v (invalid and duplicate URLs left out)", got, want)
	}
	a.srv.Close()
	nm, err := c.Netmap(context.Background(), 7, 0)
	if err != nil || nm.Version != 1 || c.Current() != b.srv.URL {
		t.Fatalf("after A stopped: Netmap = %+v, %v, Current() = %s; want B's netmap", nm, err, c.Current())
	}
}

// A call whose own deadline passes without an answer returns the
// deadline's error, and the next call starts at the next replica.
func TestFailoverAfterCallerDeadline(t *testing.T) {
	silent := newReplica(t, hang)
	good := newReplica(t, nil)
	c := testClient(t, silent, silent.srv.URL, good.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Heartbeat(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Heartbeat = %v, want the caller's deadline", err)
	}
	if c.Current() != good.srv.URL {
		t.Fatalf("Current() = %s, want the next replica %s", c.Current(), good.srv.URL)
	}
	if err := c.Heartbeat(context.Background()); err != nil || good.hits.Load() != 1 {
		t.Fatalf("next Heartbeat = %v, good replica asked %d times; want nil and 1", err, good.hits.Load())
	}
}

// Watch follows the replicas: when the one in use stops, the netmaps keep
// coming from the next.
func TestWatchFailsOver(t *testing.T) {
	var version atomic.Uint64
	version.Store(1)
	serve := func(w http.ResponseWriter, r *http.Request) {
		v := version.Load()
		if r.URL.Query().Get("since") == strconv.FormatUint(v, 10) {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		writeNetmap(w, v, nil)
	}
	a := newReplica(t, serve)
	b := newReplica(t, serve)
	c := testClient(t, a, a.srv.URL, b.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan uint64, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, 0, func(nm *api.Netmap) error { got <- nm.Version; return nil }, nil)
	}()
	if v := <-got; v != 1 {
		t.Fatalf("first netmap version %d, want 1", v)
	}
	a.srv.CloseClientConnections()
	a.srv.Close()
	version.Store(2)
	select {
	case v := <-got:
		if v != 2 || c.Current() != b.srv.URL {
			t.Fatalf("after A stopped: version %d from %s, want 2 from B", v, c.Current())
		}
	case <-ctx.Done():
		t.Fatal("no netmap from B within 30s after A stopped")
	}
	cancel()
	<-done
}
