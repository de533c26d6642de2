package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeapi"
)

func TestRecords(t *testing.T) {
	svcs := []desired.Service{
		{Name: "web", Proto: "tcp", Port: 8443, Allow: []string{"group:devs", "tag:web"}}, {Name: "web", Proto: "tcp", Port: 8080, Allow: []string{"group:devs", "tag:web"}},
		{Name: "web", Proto: "udp", Port: 5353}, {Name: "api", Proto: "tcp", Port: 9000},
	}
	want := []api.Service{
		{Name: "api", Protocol: "tcp", Port: 9000},
		{Name: "web", Protocol: "tcp", Port: 8080, Allow: "group:devs,tag:web"},
		{Name: "web", Protocol: "tcp", Port: 8443, Allow: "group:devs,tag:web"},
		{Name: "web", Protocol: "udp", Port: 5353},
	}
	if got := Records(svcs); !slices.Equal(got, want) {
		t.Errorf("Records = %v, want %v", got, want)
	}
	if got := Records(nil); got != nil {
		t.Errorf("Records(nil) = %v, want nil", got)
	}
}

// TestAgentWire checks the requests against a server speaking the agent's
// local API wire format (agent/internal/localapi).
func TestAgentWire(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tunnelmesh.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var got nodeapi.ServicesRequest
	mux := http.NewServeMux()
	var removed atomic.Bool
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if removed.Load() {
			w.Write([]byte(`{"name":"node1","ip":"100.64.0.7","removed":true,"peers":[]}`))
			return
		}
		w.Write([]byte(`{"name":"node1","ip":"100.64.0.7","peers":[]}`))
	})
	mux.HandleFunc("PUT /v1/services", func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			w.WriteHeader(400)
			return
		}
		if got.Owner != Owner || got.Services == nil {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"set services: bad services: owner"}`))
			return
		}
		if len(got.Services) > 0 && got.Services[0].Name == "dns" {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"set services: bad services: dockerwatch[0]: dns/udp is already published"}`))
			return
		}
		w.Write([]byte(`{}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	a := New(sock)
	ctx := context.Background()
	if ip, err := a.MeshAddr(ctx); err != nil || ip != netip.MustParseAddr("100.64.0.7") {
		t.Errorf("MeshAddr = %v, %v; want 100.64.0.7", ip, err)
	}
	removed.Store(true)
	if _, err := a.MeshAddr(ctx); !errors.Is(err, ErrNodeRemoved) {
		t.Errorf("MeshAddr of a removed node = %v, want ErrNodeRemoved", err)
	}
	removed.Store(false)
	web := []api.Service{{Name: "web", Protocol: "tcp", Port: 8080}}
	if err := a.Publish(ctx, web); err != nil || !slices.Equal(got.Services, web) {
		t.Errorf("Publish = %v; server got %+v", err, got)
	}
	if err := a.Publish(ctx, nil); err != nil || len(got.Services) != 0 {
		t.Errorf("Publish(nil) = %v; server got %+v, want an empty list", err, got)
	}
	err = a.Publish(ctx, []api.Service{{Name: "dns", Protocol: "udp", Port: 53}})
	if err == nil || !strings.Contains(err.Error(), "dns/udp is already published") {
		t.Errorf("Publish(clash) = %v, want the agent's reason", err)
	}
	if _, err := New(filepath.Join(t.TempDir(), "none.sock")).MeshAddr(ctx); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("MeshAddr with no agent = %v, want an error naming the socket", err)
	}
}

// TestRecordedWire runs the client against bodies recorded from the
// agent's local API (shared/nodeapi/testdata): the PUT it sends is the
// recorded request byte for byte, and it reads the recorded status and
// error answers.
func TestRecordedWire(t *testing.T) {
	rec := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "nodeapi", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sock := filepath.Join(t.TempDir(), "tunnelmesh.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var put atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { w.Write(rec("status_minimal.json")) })
	mux.HandleFunc("PUT /v1/services", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		put.Store(b)
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write(rec("error.json"))
			return
		}
		w.Write(b)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	a := New(sock)
	ctx := context.Background()
	if ip, err := a.MeshAddr(ctx); err != nil || ip != netip.MustParseAddr("100.64.0.5") {
		t.Errorf("MeshAddr = %v, %v; want 100.64.0.5 from the recorded status", ip, err)
	}
	svcs := []api.Service{{Name: "web", Protocol: "tcp", Port: 8080, Allow: "node2"}, {Name: "web", Protocol: "udp", Port: 5353}}
	if err := a.Publish(ctx, svcs); err != nil {
		t.Fatal(err)
	}
	// The recorded request ends with the encoder's newline; the client
	// sends the object alone.
	want := bytes.TrimSuffix(rec("services_request.json"), []byte("\n"))
	if got, _ := put.Load().([]byte); !bytes.Equal(got, want) {
		t.Errorf("PUT body =\n%s\nwant (recorded)\n%s", got, want)
	}
	if err := a.Publish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := put.Load().([]byte), bytes.TrimSuffix(rec("services_request_empty.json"), []byte("\n")); !bytes.Equal(got, want) {
		t.Errorf("PUT body (withdraw) = %s, want (recorded) %s", got, want)
	}
	err = a.do(ctx, http.MethodPut, PathServices+"?fail=1", []byte(`{}`), nil)
	if err == nil || !strings.Contains(err.Error(), "dns/udp is already published") {
		t.Errorf("a refused PUT = %v, want the recorded error's text", err)
	}
}
