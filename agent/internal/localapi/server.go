package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Backend is what the server asks of the running node.
type Backend interface {
	Status() Status
	// Ping pings peer (a name or a mesh IP) through the tunnel.
	Ping(ctx context.Context, peer string) (PingResult, error)
}

// ErrUnknownPeer is returned (wrapped) by a Backend's Ping for a peer that is
// not in the netmap; the server answers it with 404.
var ErrUnknownPeer = errors.New("unknown peer")

// ErrInUse is returned by Listen when a node already serves the socket.
var ErrInUse = errors.New("local API socket in use by a running node")

// Listen creates the unix socket at path with mode 0600. A stale socket
// left by a crashed node is replaced; a live one is an error.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("listen %s: %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers local API calls on ln until ctx ends, then closes ln (which
// removes the socket file) and returns nil.
func Serve(ctx context.Context, ln net.Listener, b Backend, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("POST "+PathPing, func(w http.ResponseWriter, r *http.Request) {
		peer := r.URL.Query().Get("peer")
		if peer == "" || len(peer) > 255 {
			writeJSON(w, http.StatusBadRequest, Error{Error: "ping: peer (a name or mesh IP) is required"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		res, err := b.Ping(ctx, peer)
		switch {
		case errors.Is(err, ErrUnknownPeer):
			writeJSON(w, http.StatusNotFound, Error{Error: err.Error()})
		case err != nil:
			writeJSON(w, http.StatusBadGateway, Error{Error: err.Error()})
		default:
			writeJSON(w, http.StatusOK, res)
		}
	})
	if s, ok := b.(ServicesSetter); ok {
		mux.HandleFunc("PUT "+PathServices, servicesHandler(s))
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("local api: %w", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
