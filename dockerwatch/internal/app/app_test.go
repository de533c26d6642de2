package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/publish"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// fakeAgent is the agent's local API on a unix socket: the node's mesh
// address is 127.0.0.1 (so the test listens on loopback only), and it
// records every PUT /v1/services.
type fakeAgent struct {
	mu   sync.Mutex
	puts []publishBody
}

type publishBody struct {
	Owner    string        `json:"owner"`
	Services []api.Service `json:"services"`
}

func (f *fakeAgent) start(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "tunnelmesh.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"name":"node1","ip":"127.0.0.1","peers":[]}`))
	})
	mux.HandleFunc("PUT /v1/services", func(w http.ResponseWriter, r *http.Request) {
		var b publishBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.puts = append(f.puts, b)
		f.mu.Unlock()
		w.Write([]byte(`{}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func (f *fakeAgent) last() (publishBody, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.puts) == 0 {
		return publishBody{}, 0
	}
	return f.puts[len(f.puts)-1], len(f.puts)
}

// TestMetricsOnMeshPublishedApart: with metrics mesh:PORT, /metrics is served
// on the node's mesh address and published as metrics-dockerwatch under its
// own owner, never api.ServiceOwnerDocker (whose services the policy's
// docker section opens to its from: that would open the metrics port to
// more than the nodes tagged monitoring); it is withdrawn at the end.
func TestMetricsOnMeshPublishedApart(t *testing.T) {
	fa := &fakeAgent{}
	agent := publish.New(fa.start(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tunnelmesh_dockerwatch_reconciles_total 1\n")
	})
	srv := &http.Server{Handler: mux}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveOnMesh(ctx, srv, agent, port, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()

	url := "http://127.0.0.1:" + strconv.Itoa(int(port)) + "/metrics"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "tunnelmesh_dockerwatch_reconciles_total") {
				t.Fatalf("GET %s = %s", url, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		b, n := fa.last()
		if n > 0 {
			want := api.Service{Name: "metrics-dockerwatch", Protocol: "tcp", Port: port}
			if b.Owner == api.ServiceOwnerDocker || b.Owner != publish.MetricsOwner || len(b.Services) != 1 || b.Services[0] != want {
				t.Fatalf("published %+v, want owner %q (not %q) with %+v", b, publish.MetricsOwner, api.ServiceOwnerDocker, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("metrics-dockerwatch never published")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("serveOnMesh did not return after cancel")
	}
	srv.Close()
	if b, _ := fa.last(); b.Owner != publish.MetricsOwner || len(b.Services) != 0 {
		t.Errorf("last publish %+v, want the metrics service withdrawn", b)
	}
}
