package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// fakeStorage answers the credentials API for one node key, verifying the
// signature as the storage service does.
func fakeStorage(t *testing.T, id string, pub nodekey.PublicKey) *httptest.Server {
	replays := nodeauth.NewReplayCache()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q, err := nodeauth.ParsePeer(r, body)
		if err != nil || q.NodeID != id || q.Verify(pub, time.Now(), replays) != nil || r.URL.Path != api.PathStorageCredentials {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.Error{Error: "refused", Code: api.CodeUnauthorized})
			return
		}
		json.NewEncoder(w).Encode(api.StorageCredentials{AccessKeyID: "TMKEY", SecretAccessKey: "s3cr'et", Region: "us-east-1",
			Endpoint: "http://storage.mesh:9000", Buckets: []string{"mesh"}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func nodeState(t *testing.T, id string) (string, nodekey.PrivateKey) {
	dir := t.TempDir()
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Save(filepath.Join(dir, state.KeyFile)); err != nil {
		t.Fatal(err)
	}
	c := regclient.Credentials{Coordinator: "https://127.0.0.1:1", Credential: id + ".secret", KeyFile: state.KeyFile}
	if err := c.Save(filepath.Join(dir, state.CredentialsFile)); err != nil {
		t.Fatal(err)
	}
	return dir, k
}

func TestStorageCredentials(t *testing.T) {
	dir, k := nodeState(t, "n1")
	srv := fakeStorage(t, "n1", k.Public())
	server := strings.TrimPrefix(srv.URL, "http://")
	cmd := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"storage", "credentials", "--state-dir", dir, "--server", server}, args...), Env{Stdout: &out, Stderr: &errb})
		return out.String() + errb.String(), code
	}
	out, code := cmd()
	want := "export AWS_ACCESS_KEY_ID=TMKEY\nexport AWS_SECRET_ACCESS_KEY='s3cr'\\''et'\nexport AWS_REGION=us-east-1\nexport AWS_ENDPOINT_URL=http://storage.mesh:9000\n"
	if code != 0 || out != want {
		t.Errorf("storage credentials = %d %q, want 0 %q", code, out, want)
	}
	out, code = cmd("--json")
	var m map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m["AWS_SECRET_ACCESS_KEY"] != "s3cr'et" || m["AWS_ENDPOINT_URL"] != "http://storage.mesh:9000" {
		t.Errorf("storage credentials --json = %d %q", code, out)
	}

	aws := t.TempDir()
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(aws, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(aws, "config"))
	os.WriteFile(filepath.Join(aws, "credentials"), []byte("[other]\naws_access_key_id = X\n[mesh]\naws_access_key_id = OLD\n"), 0o600)
	if out, code = cmd("--aws-profile", "mesh"); code != 0 {
		t.Fatalf("--aws-profile: %d %s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(aws, "credentials"))
	if got := string(b); got != "[other]\naws_access_key_id = X\n[mesh]\naws_access_key_id = TMKEY\naws_secret_access_key = s3cr'et\n" {
		t.Errorf("credentials file = %q", got)
	}
	b, _ = os.ReadFile(filepath.Join(aws, "config"))
	if got := string(b); got != "[profile mesh]\nregion = us-east-1\nendpoint_url = http://storage.mesh:9000\n" {
		t.Errorf("config file = %q", got)
	}

	// A node whose key is not the one the service knows is refused.
	other, _ := nodeState(t, "n1")
	var out2, errb bytes.Buffer
	if code := run(context.Background(), []string{"storage", "credentials", "--state-dir", other, "--server", server}, Env{Stdout: &out2, Stderr: &errb}); code == 0 || out2.Len() != 0 {
		t.Errorf("wrong key: code %d, stdout %q; want failure and no output", code, out2.String())
	}
	if _, code := cmd("--json", "--env"); code != 2 {
		t.Errorf("--json --env: code %d, want 2", code)
	}
}

// TestStorageCredentialsFailover: of a storage cluster's nodes, one that
// is down is passed over for the next in the netmap.
func TestStorageCredentialsFailover(t *testing.T) {
	dir, k := nodeState(t, "n1")
	creds, err := regclient.LoadCredentials(filepath.Join(dir, state.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	downAddr := strings.TrimPrefix(down.URL, "http://")
	down.Close()
	up := strings.TrimPrefix(fakeStorage(t, "n1", k.Public()).URL, "http://")

	nm := &api.Netmap{
		Self: api.Node{ID: "n1", IP: netip.MustParseAddr("100.64.0.1")},
		Peers: []api.Node{
			{ID: "s1", IP: netip.MustParseAddr("100.64.0.2"), Services: []api.Service{{Name: api.ServiceStorageAuth, Protocol: "tcp", Port: 9001}, {Name: api.ServiceStorage, Protocol: "tcp", Port: 9000}}},
			{ID: "x", IP: netip.MustParseAddr("100.64.0.3")},
			{ID: "s2", IP: netip.MustParseAddr("100.64.0.4"), Services: []api.Service{{Name: api.ServiceStorageAuth, Protocol: "tcp", Port: 9001}}},
		},
	}
	servers := storageServers(nm)
	if len(servers) != 2 || servers[0] != (storageServer{"100.64.0.2:9001", "100.64.0.2:9000"}) || servers[1].auth != "100.64.0.4:9001" {
		t.Fatalf("storageServers = %+v", servers)
	}

	sc, s3, err := askAnyStorage(context.Background(), "n1", creds, []storageServer{{downAddr, "down:9000"}, {up, "up:9000"}})
	if err != nil || sc.AccessKeyID != "TMKEY" || s3 != "up:9000" {
		t.Fatalf("askAnyStorage(down, up) = %+v, %q, %v; want the second's answer", sc, s3, err)
	}
	_, _, err = askAnyStorage(context.Background(), "n1", creds, []storageServer{{downAddr, ""}})
	if err == nil || !strings.Contains(err.Error(), downAddr) {
		t.Errorf("askAnyStorage(down) = %v, want an error naming %s", err, downAddr)
	}
	if _, _, err := askAnyStorage(context.Background(), "n1", creds, nil); err == nil || !strings.Contains(err.Error(), "no node in the netmap publishes") {
		t.Errorf("askAnyStorage(none) = %v", err)
	}
}
