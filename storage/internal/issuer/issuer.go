// Package issuer is the storage service's credentials API and its view of
// the mesh.
//
// Membership comes from the netmap of the node the service runs as
// (ApplyNetmap): its own record and its peers. A node asks for its S3
// credentials with POST api.PathStorageCredentials signed by its node key
// (nodeauth.SignPeer); the service finds the node ID in the current netmap,
// verifies the signature with the public key recorded there, refuses replays
// and stale dates, and answers the node's credentials (issued on first
// request). When a node leaves the netmap its credentials are revoked: the
// identities file is rewritten and SeaweedFS reloaded before ApplyNetmap
// returns.
//
// Access: when the node's filter carries the policy's storage grants
// (api.Filter.Storage), each node's identity gets exactly its granted
// actions, rewritten and reloaded when the grants change; without them
// (no policy, or the node does not publish the storage service) every
// member may read, write and list Buckets.
package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
)

// maxBody bounds a credentials request body.
const maxBody = 4 << 10

// Service issues and revokes credentials. Set the fields before use.
type Service struct {
	Store    *creds.Store
	Buckets  []string
	Region   string
	Endpoint string // http://storage.<zone>:9000
	// Reload makes SeaweedFS reread the identities file.
	Reload func() error
	// Usable, if set, waits until SeaweedFS accepts a newly issued key, so
	// a client never gets a key that is refused because the reload is still
	// in flight.
	Usable  func(ctx context.Context, k creds.Key) error
	Log     *slog.Logger
	Metrics *Metrics
	Now     func() time.Time

	replays *nodeauth.ReplayCache
	once    sync.Once

	mu      sync.Mutex // guards the fields below
	members map[string]api.Node
	version uint64
	// grants are the policy's SeaweedFS actions by node ID (names resolved
	// against the netmap that carried them); nil: every member gets Buckets.
	grants map[string][]string
	// writeMu serialises identity-file writes and reloads.
	writeMu sync.Mutex
}

func (s *Service) init() {
	s.once.Do(func() {
		s.replays = nodeauth.NewReplayCache()
		if s.Log == nil {
			s.Log = slog.Default()
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Metrics == nil {
			s.Metrics = NewMetrics(nil)
		}
	})
}

// Ready reports whether a netmap has been applied.
func (s *Service) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members != nil
}

// ApplyNetmap takes the members of nm and revokes the credentials of nodes
// that are no longer among them.
func (s *Service) ApplyNetmap(nm *api.Netmap) error {
	s.init()
	m := make(map[string]api.Node, len(nm.Peers)+1)
	keys := make(map[string]nodekey.PublicKey, len(nm.Peers)+1)
	for _, n := range append([]api.Node{nm.Self}, nm.Peers...) {
		if n.ID == "" {
			continue
		}
		m[n.ID] = n
		keys[n.ID] = n.PublicKey
	}
	var grants map[string][]string
	if nm.Filter != nil && nm.Filter.Storage != nil {
		grants = make(map[string][]string, len(m))
		for id, n := range m {
			if a := nm.Filter.Storage.Nodes[api.NormalizeName(n.Name)]; len(a) > 0 {
				grants[id] = a
			}
		}
	}
	s.mu.Lock()
	s.members, s.version = m, nm.Version
	regrant := !sameGrants(s.grants, grants)
	s.grants = grants
	s.mu.Unlock()
	gone, changed, err := s.Store.Sync(keys, s.Now())
	if err != nil {
		return err
	}
	if regrant {
		s.Log.Info("storage grants changed", "netmap_version", nm.Version, "from_policy", grants != nil, "buckets", s.AllBuckets())
	}
	if len(gone) == 0 {
		if regrant || changed {
			return s.publish()
		}
		return nil
	}
	s.Metrics.Revoked.Add(float64(len(gone)))
	for _, id := range gone {
		s.Log.Info("storage credentials revoked", "node_id", id, "netmap_version", nm.Version)
	}
	return s.publish()
}

// publish writes the identities file and reloads SeaweedFS.
func (s *Service) publish() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.writeLocked(); err != nil {
		return err
	}
	if s.Reload == nil {
		return nil
	}
	return s.Reload()
}

// WriteIdentities writes the identities file for the current members and
// grants and returns its path.
func (s *Service) WriteIdentities() (string, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.writeLocked()
}

// writeLocked writes the identities file; writeMu is held.
func (s *Service) writeLocked() (string, error) {
	s.mu.Lock()
	grants := s.grants
	s.mu.Unlock()
	return s.Store.WriteGrantedIdentities(s.Buckets, grants)
}

// sameGrants reports whether a and b grant the same, telling nil (no
// grants from the policy) from empty (the policy grants nothing).
func sameGrants(a, b map[string][]string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// AllBuckets returns Buckets and every bucket the grants name, sorted: the
// buckets the service creates.
func (s *Service) AllBuckets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := slices.Clone(s.Buckets)
	for _, actions := range s.grants {
		all = append(all, bucketsOf(actions)...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// nodeBuckets returns the buckets node id may use.
func (s *Service) nodeBuckets(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants == nil {
		return s.Buckets
	}
	b := bucketsOf(s.grants[id])
	slices.Sort(b)
	return slices.Compact(b)
}

// bucketsOf returns the buckets of SeaweedFS actions ("Read:logs").
func bucketsOf(actions []string) []string {
	var out []string
	for _, a := range actions {
		if _, b, ok := strings.Cut(a, ":"); ok && b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (s *Service) member(id string) (api.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.members[id]
	return n, ok
}

// ServeHTTP serves the credentials API.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	if r.URL.Path != api.PathStorageCredentials {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErr(w, http.StatusMethodNotAllowed, api.CodeBadRequest, "use POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "read body")
		return
	}
	if len(body) > maxBody {
		writeErr(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, "body too large")
		return
	}
	q, err := nodeauth.ParsePeer(r, body)
	if err != nil {
		s.refuse(w, r, "malformed", http.StatusUnauthorized, api.CodeUnauthorized, err.Error(), "")
		return
	}
	n, ok := s.member(q.NodeID)
	if !ok {
		s.refuse(w, r, "not_member", http.StatusForbidden, api.CodeForbidden, "not a member of the mesh", q.NodeID)
		return
	}
	if err := q.Verify(n.PublicKey, s.Now(), s.replays); err != nil {
		reason := "bad_signature"
		switch {
		case errors.Is(err, nodeauth.ErrStale):
			reason = "stale"
		case errors.Is(err, nodeauth.ErrReplayed):
			reason = "replayed"
		}
		s.refuse(w, r, reason, http.StatusUnauthorized, api.CodeUnauthorized, err.Error(), q.NodeID)
		return
	}
	e, changed, err := s.Store.Issue(n.ID, n.Name, n.PublicKey, s.Now())
	if err != nil {
		s.Log.Error("issue storage credentials", "node_id", n.ID, "err", err)
		writeErr(w, http.StatusInternalServerError, api.CodeInternal, "issue credentials")
		return
	}
	if changed {
		if err := s.publish(); err != nil {
			s.Log.Error("publish identities", "err", err)
			writeErr(w, http.StatusInternalServerError, api.CodeInternal, "update identities")
			return
		}
		if s.Usable != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			err := s.Usable(ctx, e.Key)
			cancel()
			if err != nil {
				s.Log.Error("new storage credentials not accepted by seaweedfs", "node_id", n.ID, "err", err)
				writeErr(w, http.StatusServiceUnavailable, api.CodeInternal, "credentials not active yet; retry")
				return
			}
		}
		s.Log.Info("storage credentials issued", "node_id", n.ID, "name", n.Name, "access_key", e.AccessKey)
	}
	s.Metrics.Issued.Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(api.StorageCredentials{
		AccessKeyID:     e.AccessKey,
		SecretAccessKey: e.Secret,
		Region:          s.Region,
		Endpoint:        s.Endpoint,
		Buckets:         s.nodeBuckets(n.ID),
	})
}

func (s *Service) refuse(w http.ResponseWriter, r *http.Request, reason string, status int, code, msg, nodeID string) {
	s.Metrics.Refused.WithLabelValues(reason).Inc()
	s.Log.Warn("storage credentials refused", "reason", reason, "node_id", nodeID, "remote", r.RemoteAddr)
	writeErr(w, status, code, msg)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Error: msg, Code: code})
}
