package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// weedForTest returns the SeaweedFS binary storage/scripts/build-weed.sh
// built; missing, the test skips, except under CI=true, where it fails
// (scripts/install-deps.sh builds it).
func weedForTest(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "storage", "scripts", "build-weed.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "--print-path").Output()
	if err != nil {
		t.Fatalf("%s --print-path: %v", script, err)
	}
	path := strings.TrimSpace(string(out))
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("SeaweedFS binary %s missing under CI: scripts/install-deps.sh builds it", path)
		}
		t.Skipf("needs the SeaweedFS binary %s: run %s (several minutes, once)", path, script)
	}
	return path
}

// loopbackPortPair returns a free loopback port p whose p+10000 is free too
// (SeaweedFS opens gRPC there).
func loopbackPortPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p > 55000 {
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	t.Fatal("no free port pair")
	return 0
}

type s3Identity struct {
	Name        string              `json:"name"`
	Credentials []map[string]string `json:"credentials"`
	Actions     []string            `json:"actions"`
}

// startWeed runs a `weed server` on loopback with an admin identity and the
// node identity (Read, Write, List on bucket mesh), as tunnelmesh-storage
// configures it, creates bucket mesh, and returns the S3 address.
func startWeed(t *testing.T, nodeKey, nodeSecret string) string {
	bin := weedForTest(t)
	dir := t.TempDir()
	adminKey, adminSecret := "ADMINKEY", "admin-secret-"+rand.Text()
	ids := map[string][]s3Identity{"identities": {
		{Name: "admin", Credentials: []map[string]string{{"accessKey": adminKey, "secretKey": adminSecret}}, Actions: []string{"Admin", "Read", "Write", "List", "Tagging"}},
		{Name: "node-n1", Credentials: []map[string]string{{"accessKey": nodeKey, "secretKey": nodeSecret}}, Actions: []string{"Read:mesh", "Write:mesh", "List:mesh"}},
	}}
	b, _ := json.Marshal(ids)
	idFile := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(idFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s3Port := loopbackPortPair(t)
	itoa := func(p int) string { return fmt.Sprint(p) }
	for _, d := range []string{"data", "master"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	cmd := exec.Command(bin, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-dir="+filepath.Join(dir, "data"), "-master.dir="+filepath.Join(dir, "master"),
		"-master.port="+itoa(loopbackPortPair(t)), "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
		"-volume.port="+itoa(loopbackPortPair(t)), "-volume.max=16",
		"-filer", "-filer.port="+itoa(loopbackPortPair(t)), "-filer.localSocket="+filepath.Join(dir, "filer.sock"),
		"-s3", "-s3.ip.bind=127.0.0.1", "-s3.port="+itoa(s3Port), "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-s3.iam=false", "-s3.localSocket="+filepath.Join(dir, "s3.sock"), "-s3.config="+idFile)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("weed output:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", s3Port)
	admin, err := minio.New(addr, &minio.Options{Creds: miniocreds.NewStaticV4(adminKey, adminSecret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		last = admin.MakeBucket(ctx, "mesh", minio.MakeBucketOptions{Region: "us-east-1"})
		cancel()
		if last == nil {
			return addr
		}
	}
	t.Fatalf("create bucket mesh: %v", last)
	return ""
}

// credentialsServer answers the credentials API for the node key with the
// given S3 credentials and endpoint, verifying signatures as the storage
// service does.
func credentialsServer(t *testing.T, id string, pub nodekey.PublicKey, sc api.StorageCredentials) string {
	replays := nodeauth.NewReplayCache()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q, err := nodeauth.ParsePeer(r, body)
		if err != nil || q.NodeID != id || q.Verify(pub, time.Now(), replays) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.Error{Error: "refused", Code: api.CodeUnauthorized})
			return
		}
		json.NewEncoder(w).Encode(sc)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestStoragePutGetList runs `storage put`, `get` and `ls` against a real
// SeaweedFS with the node's own credentials: a file and stdin put, got back
// sha256-intact into a file and to stdout, listed; a missing key, a bucket
// outside the node's grant and bad arguments fail with an error naming what
// failed, and a failed get leaves no file.
func TestStoragePutGetList(t *testing.T) {
	dir, k := nodeState(t, "n1")
	secret := "node-secret-" + rand.Text()
	s3 := startWeed(t, "NODEKEYN1", secret)
	server := credentialsServer(t, "n1", k.Public(), api.StorageCredentials{AccessKeyID: "NODEKEYN1", SecretAccessKey: secret,
		Region: "us-east-1", Endpoint: "http://" + s3, Buckets: []string{"mesh"}})
	cmd := func(stdin io.Reader, args ...string) (stdout, stderr string, code int) {
		var out, errb bytes.Buffer
		full := append([]string{"storage", args[0], "--state-dir", dir, "--server", server}, args[1:]...)
		code = run(context.Background(), full, Env{Stdin: stdin, Stdout: &out, Stderr: &errb})
		return out.String(), errb.String(), code
	}

	work := t.TempDir()
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	sum := sha256.Sum256(data)
	src := filepath.Join(work, "src.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// A file, S3 endpoint from the credentials (no netmap here).
	var out, errOut string
	var code int
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		// The first put into a new bucket can fail while SeaweedFS grows volumes.
		if out, errOut, code = cmd(nil, "put", src, "mesh/dir/a.bin"); code == 0 {
			break
		}
	}
	if want := fmt.Sprintf("put s3://mesh/dir/a.bin: %d bytes\n", len(data)); code != 0 || out != want {
		t.Fatalf("storage put FILE = %d %q %q, want 0 %q", code, out, errOut, want)
	}
	// Stdin, larger than one part (multipart), endpoint named explicitly.
	big := bytes.Repeat(data, 4)
	if out, errOut, code = cmd(bytes.NewReader(big), "put", "--endpoint", "http://"+s3, "-", "s3://mesh/dir/b.bin"); code != 0 || !strings.Contains(out, fmt.Sprintf(": %d bytes", len(big))) {
		t.Fatalf("storage put - = %d %q %q", code, out, errOut)
	}

	dst := filepath.Join(work, "got.bin")
	if out, errOut, code = cmd(nil, "get", "--endpoint", s3, "mesh/dir/a.bin", dst); code != 0 {
		t.Fatalf("storage get FILE = %d %q %q", code, out, errOut)
	}
	if got, _ := os.ReadFile(dst); sha256.Sum256(got) != sum {
		t.Errorf("got file: %d bytes, sha256 differs from the put (%d bytes)", len(got), len(data))
	}
	out, errOut, code = cmd(nil, "get", "mesh/dir/b.bin", "-")
	if code != 0 || sha256.Sum256([]byte(out)) != sha256.Sum256(big) {
		t.Errorf("storage get - = %d, %d bytes, %q; want %d bytes intact", code, len(out), errOut, len(big))
	}
	if want := fmt.Sprintf("got s3://mesh/dir/b.bin: %d bytes\n", len(big)); errOut != want {
		t.Errorf("storage get - stderr = %q, want %q", errOut, want)
	}

	out, errOut, code = cmd(nil, "ls", "mesh/dir/")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[0], "  dir/a.bin") || !strings.HasSuffix(lines[1], "  dir/b.bin") ||
		!strings.HasPrefix(strings.TrimSpace(lines[0]), fmt.Sprint(len(data))+" ") {
		t.Errorf("storage ls mesh/dir/ = %d %q %q", code, out, errOut)
	}
	if out, _, code = cmd(nil, "ls", "mesh/nothing-here"); code != 0 || out != "" {
		t.Errorf("storage ls of an empty prefix = %d %q, want 0 and nothing", code, out)
	}

	// Refusals and bad arguments: an error naming what failed, nothing written.
	missing := filepath.Join(work, "missing.bin")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"missing key", []string{"get", "mesh/dir/nope", missing}, 1, "NoSuchKey"},
		{"bucket outside the grant", []string{"put", src, "other/x"}, 1, "AccessDenied, HTTP 403"},
		{"list outside the grant", []string{"ls", "other"}, 1, "HTTP 403"},
		{"no key", []string{"put", src, "mesh"}, 1, `"mesh": no object key`},
		{"no such file", []string{"put", filepath.Join(work, "absent"), "mesh/x"}, 1, "absent: no such file"},
		{"bad endpoint", []string{"get", "--endpoint", "ftp://x:1", "mesh/dir/a.bin", missing}, 1, `s3 endpoint "ftp://x:1"`},
		{"too few arguments", []string{"get", "mesh/dir/a.bin"}, 2, "want BUCKET/KEY FILE|-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cmd(nil, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.wantErr) || out != "" {
				t.Errorf("storage %v = %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.wantErr)
			}
			if _, err := os.Stat(missing); err == nil {
				t.Errorf("storage %v left %s behind", tc.args, missing)
			}
		})
	}
	if entries, _ := os.ReadDir(work); len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("work directory holds %v, want src.bin and got.bin only (no temporary files)", names)
	}
}
