package weed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/server"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/weed"
)

func TestMain(m *testing.M) {
	weed.MaybeExec()
	os.Exit(m.Run())
}

// weedBinary returns the binary scripts/build-weed.sh built; missing, the
// test skips, except under CI=true, where it fails.
func weedBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../scripts/build-weed.sh", "--print-path").Output()
	if err != nil {
		t.Fatalf("build-weed.sh --print-path: %v", err)
	}
	path := strings.TrimSpace(string(out))
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("SeaweedFS binary %s missing under CI: scripts/install-deps.sh builds it", path)
		}
		t.Skipf("needs the SeaweedFS binary %s: run storage/scripts/build-weed.sh (several minutes, once)", path)
	}
	return path
}

// freePort returns a loopback TCP port below 55535 whose port+10000 is also
// free (SeaweedFS opens gRPC there).
func freePort(t *testing.T) uint16 {
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
		return uint16(p)
	}
	t.Fatal("no free port pair")
	return 0
}

func TestSupervisedWeed(t *testing.T) {
	bin := weedBinary(t)
	dir := t.TempDir()
	store, err := creds.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	buckets := []string{"mesh", "second"}
	idFile, err := store.WriteIdentities(buckets)
	if err != nil {
		t.Fatal(err)
	}
	s3Addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t))
	var starts atomic.Int32
	sup := &weed.Supervisor{
		Opts: weed.Options{Binary: bin, Dir: filepath.Join(dir, "weed"), S3Addr: s3Addr, IdentitiesFile: idFile,
			MasterPort: freePort(t), VolumePort: freePort(t), FilerPort: freePort(t), VolumeMax: 16, VolumeSizeMB: 64},
		MaxBackoff: 2 * time.Second,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Output:     testWriter{t},
		OnStart:    func(int) { starts.Add(1) },
	}
	if os.Geteuid() == 0 {
		sup.Self = os.Args[0] // private /tmp, as tunnelmesh-storage does as root
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() {
		cancel()
		start := time.Now()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		t.Logf("weed stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	}()
	client := func(k creds.Key) (*minio.Client, error) {
		return minio.New(s3Addr.String(), &minio.Options{Creds: miniocreds.NewStaticV4(k.AccessKey, k.Secret, ""), Region: "us-east-1"})
	}
	wctx, wcancel := context.WithTimeout(ctx, 4*time.Minute)
	defer wcancel()
	if err := server.EnsureBuckets(wctx, client, store.Admin(), buckets, "us-east-1"); err != nil {
		t.Fatalf("create buckets %v: %v", buckets, err)
	}
	if err := sup.SetReady(sup.Pid()); err != nil {
		t.Fatal(err)
	}

	// As root, SeaweedFS's gRPC sockets are in its private /tmp, not the
	// machine's, where other servers and local users could meet them.
	if os.Geteuid() == 0 {
		sock := fmt.Sprintf("seaweedfs-master-grpc-%d.sock", sup.Opts.MasterPort+10000)
		if _, err := os.Stat(filepath.Join("/tmp", sock)); err == nil {
			t.Errorf("weed put its gRPC socket in the machine's /tmp: /tmp/%s", sock)
		}
		if _, err := os.Stat(filepath.Join(sup.Opts.Dir, "tmp", sock)); err != nil {
			t.Errorf("weed's gRPC socket is not in its private /tmp: %v", err)
		}
	}

	// Idle RSS, reported in the README.
	time.Sleep(5 * time.Second)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sup.Pid())); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				t.Logf("idle weed server (2 buckets, empty): %s", strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")))
			}
		}
	}

	// Object keys: SeaweedFS refuses keys with "." or ".." segments (400)
	// where AWS would store them as ordinary characters; either way nothing
	// lands at the normalised path. Long keys work up to SeaweedFS's
	// per-segment limit (a 1000-byte key of 200-byte segments is stored).
	t.Run("odd keys", func(t *testing.T) {
		ac, _ := client(store.Admin())
		for _, k := range []string{"a/../b", "x/./y", "../../etc/passwd"} {
			_, err := ac.PutObject(wctx, "mesh", k, strings.NewReader("v"), -1, minio.PutObjectOptions{})
			if er := minio.ToErrorResponse(err); er.StatusCode != 400 {
				t.Errorf("put %q = %v (status %d), want 400", k, err, er.StatusCode)
			}
		}
		for _, k := range []string{"b", "x/y", "etc/passwd"} {
			if _, err := ac.StatObject(wctx, "mesh", k, minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
				t.Errorf("stat %q after refused dotted keys = %v, want NoSuchKey", k, err)
			}
		}
		long := strings.TrimSuffix(strings.Repeat(strings.Repeat("k", 199)+"/", 5), "/")
		if _, err := ac.PutObject(wctx, "second", long, strings.NewReader("long"), -1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put a %d-byte key: %v", len(long), err)
		}
		o, err := ac.GetObject(wctx, "second", long, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(o); err != nil || string(b) != "long" {
			t.Errorf("get the %d-byte key = %q, %v", len(long), b, err)
		}
	})

	// A node's key, added live (SIGHUP).
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := store.Issue("n1", "one", k.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.WriteIdentities(buckets); err != nil {
		t.Fatal(err)
	}
	if err := sup.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := server.WaitUsable(wctx, client, e.Key, buckets); err != nil {
		t.Fatalf("node key after reload: %v", err)
	}
	nc, _ := client(e.Key)
	for _, b := range buckets {
		if _, err := nc.PutObject(wctx, b, "k", strings.NewReader("hello "+b), -1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put into %s with the node key: %v", b, err)
		}
	}

	// Revoked live: refused within 2 s of the reload.
	if _, err := store.Prune(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.WriteIdentities(buckets); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := sup.Reload(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := nc.StatObject(wctx, "mesh", "k", minio.StatObjectOptions{})
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.StatusCode == 403 {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("revoked key still works 30 s after reload: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("revoked key refused %v after SIGHUP", time.Since(start).Round(time.Millisecond))

	// kill -9 during a put: restarted, the completed objects are intact
	// and the interrupted one is not visible.
	ac, _ := client(store.Admin())
	fed := make(chan struct{})
	release := make(chan struct{})
	putErr := make(chan error, 1)
	go func() {
		_, err := ac.PutObject(wctx, "mesh", "partial", &stallingReader{n: 1 << 20, fed: fed, release: release}, 8<<20,
			minio.PutObjectOptions{DisableMultipart: true})
		putErr <- err
	}()
	select {
	case <-fed:
	case err := <-putErr:
		t.Fatalf("put ended before the kill: %v", err)
	}
	pid := sup.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-putErr; err == nil {
		t.Errorf("put across kill -9 succeeded")
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		o, err := ac.GetObject(wctx, "second", "k", minio.GetObjectOptions{})
		if err == nil {
			b, err := io.ReadAll(o)
			if err == nil && string(b) == "hello second" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("object not readable after kill -9 and restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := ac.StatObject(wctx, "mesh", "partial", minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Errorf("object interrupted by kill -9: stat = %v, want NoSuchKey", err)
	}
	if n := starts.Load(); n != 2 || sup.Pid() == pid {
		t.Errorf("starts = %d (pid %d, was %d), want a restart", n, sup.Pid(), pid)
	}
}

// stallingReader yields n zero bytes, closes fed, and then fails once
// release is closed (the server is gone by then).
type stallingReader struct {
	n       int
	fed     chan struct{}
	release chan struct{}
	closed  bool
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		k := min(len(p), r.n)
		clear(p[:k])
		r.n -= k
		return k, nil
	}
	if !r.closed {
		r.closed = true
		close(r.fed)
	}
	<-r.release
	return 0, io.ErrUnexpectedEOF
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("TUNNELMESH_WEED_LOGS") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
