package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5"
	nfs "github.com/willscott/go-nfs"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/handle"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/rootfs"
)

// handleLimit is what go-nfs is told the handler can keep: handles are
// derived, not stored, so only READDIR's batch size depends on it.
const handleLimit = 1 << 20

type export struct {
	name     string
	rw, ro   []string
	readOnly bool
	fs       *rootfs.FS // read-write view (read-only if the export is)
	roFS     *rootfs.FS
	index    *handle.Index
}

// Server serves the configured exports.
type Server struct {
	log     *slog.Logger
	ids     *identity.Watcher
	exports []*export
	byName  map[string]*export
	byID    map[handle.ExportID]*export
	byFS    map[*rootfs.FS]*export

	verifier [8]byte // write verifier: one per process, new at every start
	listings listings

	mu         sync.Mutex // guards the fields below
	conns      map[*conn]struct{}
	grantsSeen bool // a netmap has been seen; the two below say where grants come from
	fromPolicy bool
	publishing bool
}

// New opens the exports of cfg. Close the Server to close them.
func New(cfg config.Config, ids *identity.Watcher, log *slog.Logger) (*Server, error) {
	s := &Server{
		log: log, ids: ids,
		byName: map[string]*export{}, byID: map[handle.ExportID]*export{}, byFS: map[*rootfs.FS]*export{},
		conns: map[*conn]struct{}{},
	}
	rand.Read(s.verifier[:])
	for i, ec := range cfg.Exports {
		f, err := rootfs.Open(ec.Dir, rootfs.Owner{UID: ec.Owner.UID, GID: ec.Owner.GID})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("exports[%d] %s: %w", i, ec.Name, err)
		}
		e := &export{name: ec.Name, rw: ec.Allow.ReadWrite, ro: ec.Allow.ReadOnly, readOnly: ec.ReadOnly}
		e.index = handle.NewIndex(ec.Name, f) // before the views: they share the rename hook
		e.fs, e.roFS = f, f.ReadOnly()
		if ec.ReadOnly {
			e.fs = e.roFS
		}
		if _, dup := s.byID[e.index.ID()]; dup {
			f.Close()
			s.Close()
			return nil, fmt.Errorf("exports[%d] %s: export ID collides with another export's; rename it", i, ec.Name)
		}
		s.exports = append(s.exports, e)
		s.byName[e.name] = e
		s.byID[e.index.ID()] = e
		s.byFS[e.fs], s.byFS[e.roFS] = e, e
	}
	ids.Subscribe(s.netmapChanged)
	return s, nil
}

// Close closes the export directories. Call it after Serve returned.
func (s *Server) Close() error {
	for _, e := range s.exports {
		e.fs.Close()
	}
	return nil
}

// Serve accepts connections on l until ctx ends, and closes l. It waits for
// every connection's goroutine before returning.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.closeAll()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.closeAll()
			return fmt.Errorf("accept: %w", err)
		}
		addr, ok := identity.AddrOf(nc.RemoteAddr())
		if !ok {
			nc.Close()
			continue
		}
		node, err := s.ids.Current().Lookup(addr)
		if err != nil {
			s.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "err", err)
			refusedConns.WithLabelValues(reasonOf(err)).Inc()
			nc.Close()
			continue
		}
		c := newConn(s, nc, addr)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		// A netmap that arrived between the lookup and the line above swept
		// the connections without this one: look again.
		if _, err := s.ids.Current().Lookup(addr); err != nil {
			refusedConns.WithLabelValues("removed").Inc()
			c.Close()
		}
		s.log.Debug("connection", "node", node.Name, "remote", nc.RemoteAddr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve(ctx)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// netmapChanged closes the connections of sources the new netmap refuses,
// and logs where the grants come from when that changes. Grants themselves
// are read from the current Table on every request.
func (s *Server) netmapChanged(t *identity.Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fromPolicy := t.NFS != nil; !s.grantsSeen || fromPolicy != s.fromPolicy || t.Publishing != s.publishing {
		s.grantsSeen, s.fromPolicy, s.publishing = true, fromPolicy, t.Publishing
		s.logGrantSourceLocked()
	}
	for c := range s.conns {
		if _, err := t.Lookup(c.addr); err != nil {
			s.log.Info("closing the connection of a node no longer in the mesh", "remote", c.addr.String(), "err", err)
			refusedConns.WithLabelValues("removed").Inc()
			c.Close()
		}
	}
}

func (s *Server) logGrantSourceLocked() {
	if s.fromPolicy {
		s.log.Info("grants from the policy's nfs section, narrowed by the exports' allow lists where set")
		return
	}
	if !s.publishing {
		s.log.Warn("this node does not publish the nfs service (run its agent with --advertise-nfs): the policy's nfs grants, if any, do not reach nfsd; grants from the exports' allow lists")
	} else {
		s.log.Info("the policy has no nfs section: grants from the exports' allow lists")
	}
	for _, e := range s.exports {
		if !e.hasAllow() {
			s.log.Warn("nobody may mount the export: it has no allow list and the policy has no nfs section", "export", e.name)
		}
	}
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, identity.ErrOutsideMesh):
		return "outside_mesh"
	case errors.Is(err, identity.ErrUnknownNode):
		return "unknown_node"
	case errors.Is(err, identity.ErrNoNetmap):
		return "no_netmap"
	}
	return "other"
}

// ErrNoGrant is returned for a node without a grant on an export.
var ErrNoGrant = errors.New("no grant on the export")

// access returns the view of e the connection's node may use now.
func (s *Server) access(addr netip.Addr, e *export) (*rootfs.FS, *identity.Node, error) {
	t := s.ids.Current()
	n, err := t.Lookup(addr)
	if err != nil {
		return nil, nil, err
	}
	switch e.levelOf(n, t.NFS) {
	case ReadWrite:
		return e.fs, n, nil
	case ReadOnly:
		return e.roFS, n, nil
	}
	return nil, n, fmt.Errorf("%s on %s: %w", n.Name, e.name, ErrNoGrant)
}

// exportNamed finds the export a MOUNT path names ("/shared" or "shared").
func (s *Server) exportNamed(p string) *export {
	return s.byName[strings.Trim(p, "/")]
}

// handler is go-nfs's Handler for one connection.
type handler struct {
	s    *Server
	addr netip.Addr
}

var (
	_ nfs.Handler        = (*handler)(nil)
	_ nfs.CachingHandler = (*handler)(nil)
)

func (h *handler) Mount(ctx context.Context, _ net.Conn, req nfs.MountRequest) (nfs.MountStatus, billy.Filesystem, []nfs.AuthFlavor) {
	e := h.s.exportNamed(string(req.Dirpath))
	if e == nil {
		mounts.WithLabelValues("no_such_export").Inc()
		return nfs.MountStatusErrNoEnt, nil, nil
	}
	f, n, err := h.s.access(h.addr, e)
	if err != nil {
		h.s.log.Warn("mount refused", "remote", h.addr.String(), "export", e.name, "err", err)
		mounts.WithLabelValues("refused").Inc()
		return nfs.MountStatusErrAcces, nil, nil
	}
	h.s.log.Info("mount", "node", n.Name, "export", e.name, "read_only", f.IsReadOnly())
	mounts.WithLabelValues("ok").Inc()
	return nfs.MountStatusOk, f, []nfs.AuthFlavor{nfs.AuthFlavorNull}
}

func (h *handler) Change(f billy.Filesystem) billy.Change {
	if r, ok := f.(*rootfs.FS); ok && !r.IsReadOnly() {
		return r
	}
	return nil
}

func (h *handler) FSStat(ctx context.Context, f billy.Filesystem, st *nfs.FSStat) error {
	return statfs(f.Root(), st)
}

func (h *handler) ToHandle(f billy.Filesystem, path []string) []byte {
	r, ok := f.(*rootfs.FS)
	if !ok {
		return nil
	}
	e := h.s.byFS[r]
	if e == nil {
		return nil
	}
	return e.index.Handle(strings.Join(path, "/"))
}

func (h *handler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	id, _, _, err := handle.Parse(fh)
	if err != nil {
		return nil, nil, err
	}
	e := h.s.byID[id]
	if e == nil {
		return nil, nil, fmt.Errorf("from handle: %w: no such export", handle.ErrStale)
	}
	f, _, err := h.s.access(h.addr, e)
	if err != nil {
		return nil, nil, fmt.Errorf("from handle: %w", err)
	}
	p, err := e.index.Resolve(fh)
	if err != nil {
		return nil, nil, err
	}
	if p == "." {
		return f, []string{}, nil
	}
	return f, strings.Split(p, "/"), nil
}

func (h *handler) InvalidateHandle(f billy.Filesystem, fh []byte) error {
	if id, _, _, err := handle.Parse(fh); err == nil {
		if e := h.s.byID[id]; e != nil {
			e.index.Forget(fh)
		}
	}
	return nil
}

func (h *handler) HandleLimit() int { return handleLimit }
