package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		in     string
		port   uint16
		onMesh bool
		err    string
	}{
		{"mesh:9108", 9108, true, ""},
		{"off", 0, false, ""},
		{"", 0, false, ""},
		{"127.0.0.1:9108", 0, false, ""},
		{"mesh:0", 0, false, `-metrics-listen "mesh:0": want mesh:PORT`},
		{"mesh:x", 0, false, `-metrics-listen "mesh:x": want mesh:PORT`},
		{"9108", 0, false, `-metrics-listen "9108": want mesh:PORT, HOST:PORT or off`},
	} {
		port, onMesh, err := parseMetricsListen(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseMetricsListen(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || port != tc.port || onMesh != tc.onMesh {
			t.Errorf("parseMetricsListen(%q) = %d, %v, %v; want %d, %v", tc.in, port, onMesh, err, tc.port, tc.onMesh)
		}
	}
}

// TestMetricsOnServingAddress: with -metrics-listen mesh:PORT, /metrics is
// served on the address NFS is served on (the node's mesh address, here
// 127.0.0.1 in the fake registry's 127.0.0.0/8 mesh).
func TestMetricsOnServingAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	mport := freePort(t)
	l := startNFSDArgs(t, []string{"-metrics-listen", "mesh:" + strconv.Itoa(mport)}, `
  - name: shared
    dir: DIR/shared
    allow: {read_write: [files]}
`, "shared")
	url := "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "tunnelmesh_nfsd_export_lists_total 0") {
				t.Fatalf("GET %s = %d\n%s\nwant 200 with tunnelmesh_nfsd_export_lists_total", url, resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v\nnfsd log:\n%s", url, err, l.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
