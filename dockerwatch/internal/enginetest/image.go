package enginetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Image is the tag of the test image that BuildImage builds.
const Image = "tunnelmesh/dockerwatch-testhttpd:test"

// BuildImage builds Image: FROM scratch with the static server in
// testdata/httpd (HTTP "hello from $NAME" on :8080, UDP echo on :5353). It
// needs the go and docker commands.
func BuildImage(ctx context.Context) error {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "testdata", "httpd")
	dir, err := os.MkdirTemp("", "dockerwatch-image")
	if err != nil {
		return fmt.Errorf("build test image: %w", err)
	}
	defer os.RemoveAll(dir)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "httpd"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build test image: go build: %w: %s", err, out)
	}
	df := "FROM scratch\nCOPY httpd /httpd\nEXPOSE 8080/tcp 5353/udp\nENTRYPOINT [\"/httpd\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return fmt.Errorf("build test image: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "docker", "build", "-q", "-t", Image, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("build test image: docker build: %w: %s", err, out)
	}
	return nil
}
