package localapi

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

type servicesBackend struct {
	fakeBackend
	mu  sync.Mutex
	got map[string][]api.Service
}

func (b *servicesBackend) SetServices(owner string, svcs []api.Service) error {
	if owner == "bad" {
		return fmt.Errorf("%w: owner bad refused", ErrBadServices)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got[owner] = svcs
	return nil
}

func serve(t *testing.T, b Backend) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, b, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return NewClient(sock)
}

func TestSetServices(t *testing.T) {
	b := &servicesBackend{got: map[string][]api.Service{}}
	c := serve(t, b)
	ctx := context.Background()
	web := []api.Service{{Name: "web", Protocol: "tcp", Port: 8080}}
	if err := c.SetServices(ctx, "dockerwatch", web); err != nil {
		t.Fatalf("SetServices = %v", err)
	}
	if err := c.SetServices(ctx, "bad", web); err == nil || !strings.Contains(err.Error(), "owner bad refused") {
		t.Errorf("SetServices(refused) = %v, want the backend's reason", err)
	}
	if err := c.SetServices(ctx, "other", nil); err != nil {
		t.Fatalf("SetServices(nil) = %v", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Equal(b.got["dockerwatch"], web) || b.got["other"] == nil || len(b.got["other"]) != 0 {
		t.Errorf("backend got %v, want dockerwatch: %v and other: []", b.got, web)
	}
}

// A backend that does not take services answers 404, and the client says so.
func TestSetServicesUnsupported(t *testing.T) {
	c := serve(t, fakeBackend{})
	if err := c.SetServices(context.Background(), "dockerwatch", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("SetServices on a backend without it = %v, want 404", err)
	}
}
