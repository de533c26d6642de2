package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The S3 CLIs of Debian (scripts/install-deps.sh installs them), by path: a
// pyenv shim may shadow `aws` in PATH.
const (
	awsCLI   = "/usr/bin/aws"
	s3cmdCLI = "/usr/bin/s3cmd"
)

// s3CLI runs S3 command lines in namespaces with a node's own credentials,
// taken from `tunnelmesh storage credentials --env` as a user would
// (eval), never passed on a command line.
type s3CLI struct {
	l        *lab
	endpoint string // storage node's mesh IP:9000
	home     string // HOME and the clients' config files, no credentials in them
}

func newS3CLI(t *testing.T, l *lab, endpoint string) *s3CLI {
	for _, bin := range []string{awsCLI, s3cmdCLI} {
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing under CI: scripts/install-deps.sh installs it", bin)
			}
			t.Skipf("needs %s (apt-get install awscli s3cmd; scripts/install-deps.sh)", bin)
		}
	}
	home := filepath.Join(l.Dir(), "s3cli-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// s3cmd takes its keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
	// when its config has none; path-style requests (host_bucket without
	// %(bucket)s), plain HTTP over the mesh, SigV4.
	cfg := fmt.Sprintf("[default]\nhost_base = %s\nhost_bucket = %s\nuse_https = False\nbucket_location = us-east-1\nsignature_v2 = False\nprogress_meter = False\n", endpoint, endpoint)
	if err := os.WriteFile(filepath.Join(home, "s3cfg"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &s3CLI{l: l, endpoint: endpoint, home: home}
}

// run runs script with bash in n's namespace after eval of n's credentials
// (n == nil: no credentials at all); $AWS and $S3CMD are the clients with
// their endpoint options.
func (c *s3CLI) run(n *node, ns, script string) (string, error) {
	return c.runFor(n, ns, 5*time.Minute, script)
}

// runFor is run with a time limit of its own.
func (c *s3CLI) runFor(n *node, ns string, timeout time.Duration, script string) (string, error) {
	pre := fmt.Sprintf("set -euo pipefail\nexport HOME=%[1]s AWS_CONFIG_FILE=%[1]s/aws-config AWS_SHARED_CREDENTIALS_FILE=%[1]s/aws-credentials AWS_PAGER=\n"+
		"unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL AWS_PROFILE\n"+
		"AWS=\"%[2]s --endpoint-url http://%[3]s\"\nS3CMD=\"%[4]s -c %[1]s/s3cfg\"\n",
		c.home, awsCLI, c.endpoint, s3cmdCLI)
	if n != nil {
		pre += fmt.Sprintf("eval \"$(%s storage credentials --env --state-dir %s)\"\n", c.l.bin, n.stateDir)
	}
	return c.l.Run(ns, timeout, "bash", "-c", pre+script)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func randomFile(t *testing.T, path string, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// testS3CLIs: awscli and s3cmd on node a put, on node b get, sha256-intact
// (aws's 9 MiB upload is multipart); 1 GiB streamed through aws (multipart,
// 128 parts) on a, fetched on b, sha256-intact; a presigned GET made by aws on a,
// fetched on b with no credentials; the same URL expired: 403; an unsigned
// request: 403.
func testS3CLIs(t *testing.T, l *lab, endpoint, s3tool string, a, b *node) {
	c := newS3CLI(t, l, endpoint)
	dir := filepath.Join(l.Dir(), "s3cli-files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	awsSrc, s3cmdSrc := filepath.Join(dir, "aws-src.bin"), filepath.Join(dir, "s3cmd-src.bin")
	awsSum := randomFile(t, awsSrc, 9<<20+7) // over aws's 8 MiB multipart threshold
	s3cmdSum := randomFile(t, s3cmdSrc, 2<<20+3)

	t.Run("aws put on a, get on b", func(t *testing.T) {
		if out, err := c.run(a, a.ns, fmt.Sprintf("$AWS s3 cp --only-show-errors %s s3://mesh/cli/aws.bin", awsSrc)); err != nil {
			t.Fatalf("aws s3 cp on %s: %v %s", a.name, err, out)
		}
		got := filepath.Join(dir, "aws-got.bin")
		if out, err := c.run(b, b.ns, fmt.Sprintf("$AWS s3 cp --only-show-errors s3://mesh/cli/aws.bin %s", got)); err != nil {
			t.Fatalf("aws s3 cp on %s: %v %s", b.name, err, out)
		}
		if sum := fileSHA256(t, got); sum != awsSum {
			t.Errorf("aws get on %s: sha256 %s, put %s", b.name, sum, awsSum)
		}
	})
	t.Run("s3cmd put on b, get on a", func(t *testing.T) {
		if out, err := c.run(b, b.ns, fmt.Sprintf("$S3CMD put --quiet %s s3://mesh/cli/s3cmd.bin", s3cmdSrc)); err != nil {
			t.Fatalf("s3cmd put on %s: %v %s", b.name, err, out)
		}
		got := filepath.Join(dir, "s3cmd-got.bin")
		if out, err := c.run(a, a.ns, fmt.Sprintf("$S3CMD get --quiet --force s3://mesh/cli/s3cmd.bin %s", got)); err != nil {
			t.Fatalf("s3cmd get on %s: %v %s", a.name, err, out)
		}
		if sum := fileSHA256(t, got); sum != s3cmdSum {
			t.Errorf("s3cmd get on %s: sha256 %s, put %s", a.name, sum, s3cmdSum)
		}
		out, err := c.run(a, a.ns, "$S3CMD ls s3://mesh/cli/")
		if err != nil || !strings.Contains(out, "s3://mesh/cli/aws.bin") || !strings.Contains(out, "s3://mesh/cli/s3cmd.bin") {
			t.Errorf("s3cmd ls on %s = %q, %v; want aws.bin and s3cmd.bin", a.name, out, err)
		}
	})
	t.Run("aws presign", func(t *testing.T) {
		url, err := c.run(a, a.ns, "$AWS s3 presign s3://mesh/cli/aws.bin --expires-in 600")
		url = strings.TrimSpace(url)
		if err != nil || !strings.HasPrefix(url, "http://"+endpoint+"/mesh/cli/aws.bin?") {
			t.Fatalf("aws s3 presign on %s = %q, %v", a.name, url, err)
		}
		// b fetches it with no S3 credentials: a plain HTTP GET.
		if out, err := l.Run(b.ns, time.Minute, s3tool, "-", "fetch", url); strings.TrimSpace(out) != awsSum {
			t.Errorf("presigned GET on %s = %q, %v; want sha256 %s", b.name, out, err, awsSum)
		}
		expiring, err := c.run(a, a.ns, "$AWS s3 presign s3://mesh/cli/aws.bin --expires-in 1")
		expiring = strings.TrimSpace(expiring)
		if err != nil || !strings.Contains(expiring, "X-Amz-Expires=1&") {
			t.Fatalf("aws s3 presign --expires-in 1 on %s = %q, %v", a.name, expiring, err)
		}
		time.Sleep(3 * time.Second)
		if out, _ := l.Run(b.ns, time.Minute, s3tool, "-", "fetch", expiring); !strings.Contains(out, "fetch 403") {
			t.Errorf("expired presigned GET on %s = %q, want 403", b.name, out)
		}
	})
	t.Run("aws 1 GiB multipart, put on a, get on b", func(t *testing.T) {
		// Streamed: deterministic pseudo-random data from s3tool, never a
		// file; aws splits stdin into 8 MiB parts.
		const size = 1 << 30
		sumFile := filepath.Join(dir, "1g.sha256")
		start := time.Now()
		if out, err := c.runFor(a, a.ns, 20*time.Minute, fmt.Sprintf("%s - gen %d tunnelmesh-1g 2>%s | $AWS s3 cp --only-show-errors --expected-size %d - s3://mesh/cli/1g.bin",
			s3tool, size, sumFile, size)); err != nil {
			t.Fatalf("aws s3 cp of 1 GiB on %s: %v %s", a.name, err, out)
		}
		put := time.Since(start)
		b0, err := os.ReadFile(sumFile)
		want := strings.TrimSpace(string(b0))
		if err != nil || len(want) != 64 {
			t.Fatalf("sha256 of the generated 1 GiB: %q %v", b0, err)
		}
		etag, err := c.run(b, b.ns, "$AWS s3api head-object --bucket mesh --key cli/1g.bin --query '[ContentLength,ETag]' --output text")
		if f := strings.Fields(etag); err != nil || len(f) != 2 || f[0] != fmt.Sprint(size) || !strings.Contains(f[1], "-") {
			t.Errorf("head-object cli/1g.bin on %s = %q, %v; want %d bytes and a multipart ETag (md5-N)", b.name, etag, err, size)
		}
		start = time.Now()
		got, err := c.runFor(b, b.ns, 20*time.Minute, "$AWS s3 cp --only-show-errors s3://mesh/cli/1g.bin - | sha256sum")
		if f := strings.Fields(got); err != nil || len(f) == 0 || f[0] != want {
			t.Fatalf("aws get of 1 GiB on %s: sha256 %q, %v; put %s", b.name, got, err, want)
		}
		t.Logf("1 GiB with awscli over the mesh: put %v, get %v", put.Round(time.Second), time.Since(start).Round(time.Second))
		if out, err := c.run(b, b.ns, "$AWS s3 rm --only-show-errors s3://mesh/cli/1g.bin"); err != nil {
			t.Errorf("aws s3 rm cli/1g.bin: %v %s", err, out)
		}
	})
	t.Run("unsigned request refused", func(t *testing.T) {
		out, err := c.run(nil, b.ns, "$AWS s3 cp --no-sign-request --only-show-errors s3://mesh/cli/aws.bin - | wc -c")
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Errorf("aws --no-sign-request on %s = %q, %v; want a 403", b.name, out, err)
		}
	})
	if testing.Verbose() {
		v, _ := exec.Command(awsCLI, "--version").Output()
		t.Logf("S3 CLIs: %s", strings.TrimSpace(string(v)))
	}
}
