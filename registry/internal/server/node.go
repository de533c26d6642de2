package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
)

// authNode authenticates a node call (package nodeauth) against the current
// snapshot: a removed node is unknown at once.
func (s *Server) authNode(r *http.Request, body []byte) (*entry, *apiError) {
	req, err := nodeauth.Parse(r, body)
	if err != nil {
		return nil, s.nodeAuthFailed(r, "node_malformed", "", err)
	}
	e := s.hub.current().byID[req.Credential.NodeID]
	if e == nil && s.shared && s.catchUp(r.Context()) {
		e = s.hub.current().byID[req.Credential.NodeID]
	}
	if e == nil {
		return nil, s.nodeAuthFailed(r, "node_unknown", req.Credential.NodeID, errors.New("unknown or removed node"))
	}
	if err := req.Verify(e.secretHash, e.node.PublicKey, s.now(), s.replay); err != nil {
		kind := "node_invalid"
		if errors.Is(err, nodeauth.ErrReplayed) {
			kind = "node_replayed"
		}
		return nil, s.nodeAuthFailed(r, kind, e.node.ID, err)
	}
	return e, nil
}

// catchUpInterval is how often an unknown node may make a replica check
// the shared store's version.
const catchUpInterval = 100 * time.Millisecond

// catchUp reloads the snapshot when the shared store holds a newer version
// (a node that joined through another replica a moment ago, whose change
// notification is still on its way). It checks at most once per
// catchUpInterval, so unknown credentials cannot flood the store; it
// reports whether it reloaded.
func (s *Server) catchUp(ctx context.Context) bool {
	s.catchMu.Lock()
	defer s.catchMu.Unlock()
	now := time.Now()
	if now.Sub(s.caughtUp) < catchUpInterval {
		return false
	}
	s.caughtUp = now
	v, err := s.st.Version(ctx)
	if err != nil || v <= s.Version() {
		return false
	}
	// The versions skipped may hold another replica's policy apply, whose
	// notification will find its version loaded.
	s.reloadPolicy()
	if err := s.refresh(ctx, v); err != nil {
		s.log.Warn("catch up with the store", "err", err)
		return false
	}
	return true
}

// nodeAuthFailed counts and logs (rate-limited) a failed node
// authentication and returns its 401. The node ID is the claimed one (an
// unknown ID is cut short); the credential itself is never logged.
func (s *Server) nodeAuthFailed(r *http.Request, kind, nodeID string, err error) *apiError {
	s.met.AuthFailures.WithLabelValues(kind).Inc()
	if len(nodeID) > 40 {
		nodeID = nodeID[:40]
	}
	s.failLog.log(s.now(), "node authentication failed", "source", sourceAddr(r), "path", r.URL.Path, "kind", kind, "node_id", nodeID, "reason", err.Error())
	return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "node authentication: %v", err)
}

// nodeCall reads the body, authenticates the node and decodes the body.
func (s *Server) nodeCall(w http.ResponseWriter, r *http.Request, v any) (*entry, *apiError) {
	body, e := readBody(w, r)
	if e != nil {
		return nil, e
	}
	self, e := s.authNode(r, body)
	if e != nil {
		return nil, e
	}
	if v != nil {
		if err := decodeJSON(body, v); err != nil {
			return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
		}
	}
	return self, nil
}

func internal(err error) *apiError {
	return errorf(http.StatusInternalServerError, api.CodeInternal, "%v", err)
}

// handleNetmap is the long-poll netmap watch (see package api).
func (s *Server) handleNetmap(w http.ResponseWriter, r *http.Request) *apiError {
	q := r.URL.Query()
	var since uint64
	base := q.Get(api.NetmapDeltaParam)
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, api.CodeBadRequest, "since: %.30q is not a version number", v)
		}
		since = n
	}
	wait := api.DefaultWatchWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errorf(http.StatusBadRequest, api.CodeBadRequest, "wait: %.30q is not a duration like 30s", v)
		}
		wait = min(d, api.MaxWatchWait)
	}
	self, e := s.nodeCall(w, r, nil)
	if e != nil {
		return e
	}
	id := self.node.ID
	if err := s.markSeen(r.Context(), id, false); err != nil {
		return internal(err)
	}
	if err := s.claimHomeRelay(r.Context(), self); err != nil {
		return internal(err)
	}
	s.met.Watchers.Inc()
	defer s.met.Watchers.Dec()
	var timer <-chan time.Time
	for {
		snap := s.hub.current()
		self := snap.byID[id]
		if self == nil {
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "node authentication: node was removed")
		}
		// A since above the current version means the registry was reset
		// or restored: answer at once so the node resynchronises.
		if snap.version != since {
			s.writeNetmap(w, r, snap, self, since, base)
			return nil
		}
		if timer == nil {
			if wait == 0 {
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-snap.changed:
		case <-timer:
			w.WriteHeader(http.StatusNotModified)
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// gzipDeltaOver is the size above which deltas are sent compressed (to
// clients that accept gzip).
const gzipDeltaOver = 4 << 10

// writeNetmap answers a watch with self's netmap: a delta on version since
// when the client holds that version as served by this process (base) and
// one can be made, else the whole netmap.
func (s *Server) writeNetmap(w http.ResponseWriter, r *http.Request, snap *snapshot, self *entry, since uint64, base string) {
	w.Header().Set(api.NetmapBaseHeader, s.netmapBase)
	if base == s.netmapBase {
		if parts, n, ok := s.deltaParts(snap, self, since); ok {
			s.met.NetmapAnswers.WithLabelValues(metrics.NetmapDelta).Inc()
			// A small delta goes as it is: compressing it (a compressor
			// per answer) costs more CPU than its bytes cost to send.
			if n > gzipDeltaOver && acceptsGzip(r) {
				writeGzip(w, gzipWhole(parts))
			} else {
				writeParts(w, parts, n)
			}
			return
		}
	}
	s.met.NetmapAnswers.WithLabelValues(metrics.NetmapFull).Inc()
	if acceptsGzip(r) {
		writeGzip(w, s.netmapGzip(snap, self))
	} else {
		parts, n := s.netmapParts(snap, self)
		writeParts(w, parts, n)
	}
}

// claimHomeRelay records, in a store replicas share, that the node
// watching here listens on this replica's relay (its netmap names it as
// its home relay), so netmaps on every replica send its relayed traffic
// there.
func (s *Server) claimHomeRelay(ctx context.Context, self *entry) error {
	rs, ok := s.st.(store.Relays)
	if !ok || s.set.HomeRelay == "" || self.stored.HomeRelay == s.set.HomeRelay {
		return nil
	}
	v, err := rs.SetHomeRelay(ctx, self.node.ID, s.set.HomeRelay)
	if err != nil || v == 0 {
		return err
	}
	return s.refreshChange(ctx, store.Change{Version: v, Node: self.node.ID})
}

func (s *Server) handleEndpoints(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.EndpointsRequest
	self, e := s.nodeCall(w, r, &req)
	if e != nil {
		return e
	}
	eps, err := validateEndpoints(req.Endpoints)
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "endpoints: %v", err)
	}
	if err := validateSSH(req.SSHEndpoint, req.SSHHostKey, req.SSHUser, req.SSHPacketPort); err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	}
	ssh := store.SSH{Endpoint: req.SSHEndpoint, HostKey: req.SSHHostKey, User: req.SSHUser, PacketPort: req.SSHPacketPort}
	svcs, err := validateServices(req.Services)
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "services: %v", err)
	}
	ctx := r.Context()
	epsChanged := !slices.Equal(eps, self.stored.Endpoints) || !ssh.Equal(self.stored.SSH())
	svcsChanged := !slices.Equal(svcs, self.stored.Services)
	if epsChanged || svcsChanged {
		if !s.epLimiter.Take(self.node.ID, s.now()) {
			w.Header().Set("Retry-After", "10")
			return errorf(http.StatusTooManyRequests, api.CodeRateLimited, "endpoints change too often; at most %d per minute", EndpointChangesPerMinute)
		}
		var v uint64
		if epsChanged {
			v, err = s.st.SetEndpoints(ctx, self.node.ID, eps, ssh)
		}
		if err == nil && svcsChanged {
			v, err = s.st.SetServices(ctx, self.node.ID, svcs)
		}
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "node authentication: node was removed")
		}
		if err != nil {
			return internal(err)
		}
		if err := s.refreshChange(ctx, store.Change{Version: v, Node: self.node.ID}); err != nil {
			return internal(err)
		}
	}
	if err := s.markSeen(ctx, self.node.ID, true); err != nil {
		return internal(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct{}
	self, e := s.nodeCall(w, r, &req)
	if e != nil {
		return e
	}
	if err := s.markSeen(r.Context(), self.node.ID, true); err != nil {
		return internal(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct{}
	self, e := s.nodeCall(w, r, &req)
	if e != nil {
		return e
	}
	if e := s.removeNode(r, self.node.ID); e != nil {
		return e
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) removeNode(r *http.Request, ref string) *apiError {
	// The removed node knows the mesh PSK: the store rotates it, keeping
	// the old one accepted for PSKOverlap so no tunnel drops meanwhile.
	n, v, err := s.st.RemoveNode(r.Context(), ref, s.now().Add(s.set.PSKOverlap))
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no node %.70q", ref)
	}
	if err != nil {
		return internal(err)
	}
	if err := s.refresh(r.Context(), v); err != nil {
		return internal(err)
	}
	s.log.Info("node removed; mesh psk rotated", "node", n.Name, "id", n.ID, "previous_psk_overlap", s.set.PSKOverlap)
	return nil
}
