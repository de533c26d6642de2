// Package daemon wires tunnelmesh-nfsd together: it watches the netmap with
// the node's credentials, waits for the first netmap to learn the node's
// mesh address, listens there (or on the configured address), and serves
// the exports until its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/portmap"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/server"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// listen is net.Listen; tests replace it.
var listen = net.Listen

// addrRetry is how often listenWhenUp tries again.
const addrRetry = 500 * time.Millisecond

// listenWhenUp listens on addr, waiting while the address is not on any
// interface yet (nfsd started before the agent configured its mesh
// address). It returns nil, nil when ctx ends first.
func listenWhenUp(ctx context.Context, addr netip.AddrPort, log *slog.Logger) (net.Listener, error) {
	for logged := false; ; logged = true {
		l, err := listen("tcp", addr.String())
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, err
		}
		if !logged {
			log.Info("waiting for the mesh address to be configured", "listen", addr.String())
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(addrRetry):
		}
	}
}

// servePortmap answers the port mapper on ip:111 (TCP and UDP) for mesh
// nodes, in goroutines wg waits for. A port that cannot be bound (another
// port mapper) is logged, not fatal: clients then need port options.
func servePortmap(ctx context.Context, wg *sync.WaitGroup, nfs netip.AddrPort, ids *identity.Watcher, log *slog.Logger) {
	pm := &portmap.Mapper{Addr: nfs}
	allow := func(a netip.Addr) bool {
		_, err := ids.Current().Lookup(a)
		return err == nil
	}
	at := netip.AddrPortFrom(nfs.Addr(), PortmapPort).String()
	l, err := listen("tcp", at)
	if err != nil {
		log.Warn("port mapper not served: clients need port options", "listen", at, "err", err)
		return
	}
	pc, err := net.ListenPacket("udp", at)
	if err != nil {
		l.Close()
		log.Warn("port mapper not served: clients need port options", "listen", at, "err", err)
		return
	}
	log.Info("serving the port mapper for NFS and MOUNT", "listen", at)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := pm.ServeTCP(ctx, l, allow); err != nil {
			log.Error("port mapper (tcp) stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := pm.ServeUDP(ctx, pc, allow); err != nil {
			log.Error("port mapper (udp) stopped", "err", err)
		}
	}()
}

// PortmapPort is the port mapper's port.
const PortmapPort = 111

// Run serves cfg until ctx ends. ready, if not nil, is called with the
// listening address once connections are accepted.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, ready func(net.Addr)) error {
	creds, err := regclient.LoadCredentials(cfg.Credentials)
	if err != nil {
		return fmt.Errorf("run nfsd: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	ids := identity.NewWatcher()
	var wg sync.WaitGroup
	defer func() {
		cancel() // stops the watch and the port mapper, also when Run fails
		wg.Wait()
	}()
	watchErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchErr <- ids.Run(ctx, creds, log)
	}()

	log.Info("waiting for the first netmap", "coordinator", creds.Coordinator)
	select {
	case <-ids.Ready():
	case err := <-watchErr:
		return fmt.Errorf("run nfsd: %w", errors.Join(err, errors.New("netmap watch ended before the first netmap")))
	case <-ctx.Done():
		return nil
	}

	ip := cfg.ListenAddr
	if !ip.IsValid() {
		ip = ids.Current().Self.IP
		if !ip.IsValid() {
			return errors.New("run nfsd: the netmap has no mesh address for this node; set listen")
		}
	}
	addr := netip.AddrPortFrom(ip, uint16(cfg.Port))
	srv, err := server.New(cfg, ids, log)
	if err != nil {
		return fmt.Errorf("run nfsd: %w", err)
	}
	defer srv.Close()
	l, err := listenWhenUp(ctx, addr, log)
	if err != nil {
		return fmt.Errorf("run nfsd: listen: %w", err)
	}
	if l == nil {
		return nil // ctx ended
	}
	names := make([]string, len(cfg.Exports))
	for i, e := range cfg.Exports {
		names[i] = e.Name
	}
	log.Info("serving NFSv3 and MOUNT", "listen", l.Addr().String(), "exports", names, "node", ids.Current().Self.Name)
	if *cfg.Portmap {
		servePortmap(ctx, &wg, netip.AddrPortFrom(ip, uint16(cfg.Port)), ids, log)
	}
	if ready != nil {
		ready(l.Addr())
	}
	if err := srv.Serve(ctx, l); err != nil {
		return fmt.Errorf("run nfsd: %w", err)
	}
	return nil
}
