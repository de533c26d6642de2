// Command underlay serves one export with nfsd's own server (package
// server: the same access checks, handles and go-nfs handler as
// tunnelmesh-nfsd) on an underlay address, for bench.sh's comparison of the
// mesh path with the plain network. Its identity comes from a fixed netmap
// in which the underlay prefix is the "mesh" and the client is one node,
// instead of the registry's netmap.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/server"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func main() {
	listen := flag.String("listen", "", "IP:PORT to serve NFS and MOUNT on")
	dir := flag.String("dir", "", "directory exported as \"shared\"")
	client := flag.String("client", "", "the client's underlay IP (the one node allowed)")
	prefix := flag.String("prefix", "", "underlay prefix holding both addresses")
	flag.Parse()
	server.TuneGC() // as tunnelmesh-nfsd does
	if err := run(*listen, *dir, *client, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "underlay:", err)
		os.Exit(1)
	}
}

func run(listen, dir, client, prefix string) error {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	cip, err := netip.ParseAddr(client)
	if err != nil {
		return fmt.Errorf("-client: %w", err)
	}
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil {
		return fmt.Errorf("-prefix: %w", err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(
		"credentials: /unused\nexports:\n  - {name: shared, dir: %q, allow: {read_write: [client]}}\n", dir)))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ids := identity.NewWatcher()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(cfg, ids, log)
	if err != nil {
		return fmt.Errorf("open export: %w", err)
	}
	defer srv.Close()
	if err := ids.Apply(&api.Netmap{Version: 1, MeshCIDR: pfx,
		Self:  api.Node{ID: "server", Name: "server", IP: ap.Addr()},
		Peers: []api.Node{{ID: "client", Name: "client", IP: cip}}}); err != nil {
		return fmt.Errorf("netmap: %w", err)
	}
	l, err := net.Listen("tcp", ap.String())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
