// Package registrytest is an in-memory fake of the registry's node API for
// other modules' tests: join (with tokens made by CreateToken), netmap watch,
// endpoint reports, heartbeats and leave, served over real TLS with a pinned
// certificate exactly as the registry serves them, plus direct mutators
// (AddNode, RemoveNode, SetEndpoints, SetFilter, SetDNS) that bump the
// netmap version as the registry would.
//
// Joins must prove the node key as the registry demands (nodeauth.VerifyJoin,
// regclient.Join signs). It is not the registry: no persistence, no admin
// API, no rate limits, and reported endpoints are taken as they are (the
// registry refuses loopback and link-local ones; tests on loopback may use
// them here).
package registrytest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// Fake is a running fake registry. Create it with New and stop it with Close.
type Fake struct {
	// URL is the base URL ("https://127.0.0.1:port").
	URL string
	// Pin is the TLS pin of the server's certificate.
	Pin string

	srv    *httptest.Server
	replay *nodeauth.ReplayCache

	mu          sync.Mutex // guards the fields below
	meshID      string
	cidr        netip.Prefix
	psk         []byte
	prevPSK     []byte
	prevUntil   time.Time
	version     uint64
	changed     chan struct{}        // closed and replaced on every version bump
	nodes       map[string]*fakeNode // by ID
	tokens      map[string]bool      // token secret hash (hex) -> reusable
	dns         api.DNSConfig
	relays      []api.Relay
	registries  []string
	filters     map[string]*api.Filter // by node name
	unavailable bool
	next        uint32 // next host index
}

type fakeNode struct {
	node       api.Node
	secretHash []byte
}

// New starts a fake registry for the mesh prefix cidr (zero: the default).
func New(cidr netip.Prefix) *Fake {
	if !cidr.IsValid() {
		cidr = meshnet.DefaultCIDR
	}
	psk := make([]byte, api.PSKSize)
	rand.Read(psk)
	f := &Fake{
		replay:  nodeauth.NewReplayCache(),
		meshID:  "fake-mesh",
		cidr:    cidr,
		psk:     psk,
		version: 1,
		changed: make(chan struct{}),
		nodes:   make(map[string]*fakeNode),
		tokens:  make(map[string]bool),
		dns:     api.DNSConfig{Zone: "mesh"},
		filters: make(map[string]*api.Filter),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathInfo, f.handleInfo)
	mux.HandleFunc("POST "+api.PathJoin, f.handleJoin)
	mux.HandleFunc("GET "+api.PathNetmap, f.node(f.handleNetmap))
	mux.HandleFunc("POST "+api.PathEndpoints, f.node(f.handleEndpoints))
	mux.HandleFunc("POST "+api.PathHeartbeat, f.node(f.handleHeartbeat))
	mux.HandleFunc("POST "+api.PathLeave, f.node(f.handleLeave))
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.StartTLS()
	f.URL = f.srv.URL
	f.Pin = tlspin.Fingerprint(f.srv.Certificate())
	return f
}

// Close stops the server.
func (f *Fake) Close() {
	f.mu.Lock()
	f.unavailable = true
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.srv.Close()
}

// TLSConfig returns a client TLS configuration pinned to the fake.
func (f *Fake) TLSConfig() *tls.Config { return tlspin.ClientConfig(f.Pin) }

// MeshID returns the mesh ID.
func (f *Fake) MeshID() string { return f.meshID }

// PSK returns the mesh pre-shared key.
func (f *Fake) PSK() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.psk)
}

// RotatePSK replaces the mesh pre-shared key, as the registry does when a
// node is removed; the old one is listed as previous for overlap.
func (f *Fake) RotatePSK(overlap time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	psk := make([]byte, api.PSKSize)
	rand.Read(psk)
	f.prevPSK, f.prevUntil, f.psk = f.psk, time.Now().Add(overlap).UTC(), psk
	f.bumpLocked()
}

// Version returns the current netmap version.
func (f *Fake) Version() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

// SetUnavailable makes every call answer 503 (true) or work again (false).
func (f *Fake) SetUnavailable(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unavailable = v
}

// CreateToken returns a new join token.
func (f *Fake) CreateToken(reusable bool) string {
	t, err := jointoken.New(f.Pin)
	if err != nil {
		panic(err)
	}
	h := t.SecretHash()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[hex.EncodeToString(h[:])] = reusable
	return t.String()
}

// AddNode registers a node directly (as a join would) and returns the
// credentials it would save; KeyFile is left empty and Key is set.
func (f *Fake) AddNode(name string, key nodekey.PrivateKey, endpoints ...netip.AddrPort) (regclient.Credentials, api.JoinResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp, err := f.addNodeLocked(api.NormalizeName(name), key.Public(), endpoints)
	if err != nil {
		return regclient.Credentials{}, api.JoinResponse{}, err
	}
	return regclient.Credentials{Coordinator: f.URL, Pin: f.Pin, Credential: resp.Credential, Key: key}, resp, nil
}

// RemoveNode removes the named node, as the admin's node remove does.
func (f *Fake) RemoveNode(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, n := range f.nodes {
		if n.node.Name == name {
			delete(f.nodes, id)
			f.bumpLocked()
			return true
		}
	}
	return false
}

// SetEndpoints replaces the named node's endpoints.
func (f *Fake) SetEndpoints(name string, eps ...netip.AddrPort) bool {
	return f.mutate(name, func(n *api.Node) { n.Endpoints = eps })
}

// SetServices replaces the named node's published services.
func (f *Fake) SetServices(name string, svcs ...api.Service) bool {
	return f.mutate(name, func(n *api.Node) { n.Services = svcs })
}

// SetOnline sets the named node's Online flag.
func (f *Fake) SetOnline(name string, online bool) bool {
	return f.mutate(name, func(n *api.Node) { n.Online = online })
}

// SetFilter sets the inbound filter in the named node's netmap (nil: none).
func (f *Fake) SetFilter(name string, flt *api.Filter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters[name] = flt
	f.bumpLocked()
}

// SetDNS sets the DNS configuration every netmap carries.
func (f *Fake) SetDNS(c api.DNSConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dns = c
	f.bumpLocked()
}

// SetRelays sets the relays every netmap carries.
func (f *Fake) SetRelays(r []api.Relay) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.relays = r
	f.bumpLocked()
}

// SetRegistries sets the registry replica URLs every netmap carries.
func (f *Fake) SetRegistries(urls []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registries = slices.Clone(urls)
	f.bumpLocked()
}

// Nodes returns every node.
func (f *Fake) Nodes() []api.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		out = append(out, n.node)
	}
	slices.SortFunc(out, func(a, b api.Node) int { return a.IP.Compare(b.IP) })
	return out
}

// Netmap returns the netmap the named node would receive.
func (f *Fake) Netmap(name string) (api.Netmap, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		if n.node.Name == name {
			return f.netmapLocked(n), true
		}
	}
	return api.Netmap{}, false
}

func (f *Fake) mutate(name string, fn func(*api.Node)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mutateLocked(name, fn)
}

func (f *Fake) mutateLocked(name string, fn func(*api.Node)) bool {
	for _, n := range f.nodes {
		if n.node.Name == name {
			fn(&n.node)
			f.bumpLocked()
			return true
		}
	}
	return false
}

func (f *Fake) bumpLocked() {
	f.version++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) addNodeLocked(name string, pub nodekey.PublicKey, eps []netip.AddrPort) (api.JoinResponse, error) {
	if err := api.ValidateName(name); err != nil {
		return api.JoinResponse{}, err
	}
	var existing *fakeNode
	for _, n := range f.nodes {
		if n.node.PublicKey == pub {
			existing = n
		} else if n.node.Name == name {
			return api.JoinResponse{}, fmt.Errorf("name %q is taken by another node", name)
		}
	}
	secret := make([]byte, 24)
	rand.Read(secret)
	if existing == nil {
		ip, err := meshnet.HostAt(f.cidr, f.next)
		if err != nil {
			return api.JoinResponse{}, err
		}
		f.next++
		id := make([]byte, 6)
		rand.Read(id)
		existing = &fakeNode{node: api.Node{ID: "n" + hex.EncodeToString(id), IP: ip, PublicKey: pub}}
		f.nodes[existing.node.ID] = existing
	}
	existing.node.Name = name
	existing.node.Endpoints = eps
	existing.node.Online = true
	existing.node.LastSeen = time.Now()
	cred := nodeauth.Credential{NodeID: existing.node.ID, Secret: base64.RawURLEncoding.EncodeToString(secret)}
	h := cred.SecretHash()
	existing.secretHash = h[:]
	f.bumpLocked()
	return api.JoinResponse{
		NodeID: existing.node.ID, Name: name, IP: existing.node.IP,
		MeshID: f.meshID, MeshCIDR: f.cidr, PSK: slices.Clone(f.psk),
		Credential: cred.String(),
	}, nil
}

func (f *Fake) netmapLocked(self *fakeNode) api.Netmap {
	psk := &api.MeshPSK{Current: slices.Clone(f.psk)}
	if f.prevPSK != nil && time.Now().Before(f.prevUntil) {
		psk.Previous, psk.PreviousUntil = slices.Clone(f.prevPSK), f.prevUntil
	}
	nm := api.Netmap{
		Version:    f.version,
		MeshID:     f.meshID,
		MeshCIDR:   f.cidr,
		PSK:        psk,
		Self:       self.node,
		DNS:        f.dns,
		Relays:     slices.Clone(f.relays),
		Filter:     f.filters[self.node.Name],
		Registries: slices.Clone(f.registries),
		Peers:      []api.Node{},
	}
	for _, n := range f.nodes {
		if n != self {
			nm.Peers = append(nm.Peers, n.node)
		}
	}
	slices.SortFunc(nm.Peers, func(a, b api.Node) int { return a.IP.Compare(b.IP) })
	return nm
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.Error{Error: msg, Code: code})
}

func (f *Fake) down(w http.ResponseWriter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable {
		writeErr(w, http.StatusServiceUnavailable, api.CodeInternal, "fake registry unavailable")
		return true
	}
	return false
}

func (f *Fake) handleInfo(w http.ResponseWriter, r *http.Request) {
	if f.down(w) {
		return
	}
	writeJSON(w, http.StatusOK, api.Info{ProtocolVersions: []int{api.ProtocolVersion}, MeshID: f.meshID, Version: "fake"})
}

func (f *Fake) handleJoin(w http.ResponseWriter, r *http.Request) {
	if f.down(w) {
		return
	}
	var req api.JoinRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, api.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "decode join request: "+err.Error())
		return
	}
	tok, err := jointoken.Parse(req.Token)
	if err != nil {
		writeErr(w, http.StatusUnauthorized, api.CodeTokenInvalid, err.Error())
		return
	}
	if tok.Pin != f.Pin {
		writeErr(w, http.StatusUnauthorized, api.CodeTokenInvalid, "token: issued for another registry (certificate pin differs)")
		return
	}
	if err := nodeauth.VerifyJoin(&req, tok.ID, tok.Pin, time.Now(), f.replay); err != nil {
		status := http.StatusUnauthorized
		code := api.CodeUnauthorized
		if errors.Is(err, nodeauth.ErrJoinUnsigned) {
			status, code = http.StatusBadRequest, api.CodeBadRequest
		}
		writeErr(w, status, code, "join proof: "+err.Error())
		return
	}
	h := tok.SecretHash()
	key := hex.EncodeToString(h[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	reusable, ok := f.tokens[key]
	if !ok {
		writeErr(w, http.StatusUnauthorized, api.CodeTokenInvalid, "join token is unknown, used, expired or revoked")
		return
	}
	resp, err := f.addNodeLocked(api.NormalizeName(req.Name), req.PublicKey, req.Endpoints)
	if err != nil {
		writeErr(w, http.StatusConflict, api.CodeConflict, err.Error())
		return
	}
	if len(req.Services) > 0 {
		f.mutateLocked(resp.Name, func(n *api.Node) { n.Services = req.Services })
	}
	if !reusable {
		delete(f.tokens, key)
	}
	writeJSON(w, http.StatusOK, resp)
}

// node wraps a handler with node authentication.
func (f *Fake) node(h func(http.ResponseWriter, *http.Request, *fakeNode, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f.down(w) {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, api.MaxBodyBytes))
		if err != nil {
			writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "read body: "+err.Error())
			return
		}
		q, err := nodeauth.Parse(r, body)
		if err != nil {
			writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized, err.Error())
			return
		}
		f.mu.Lock()
		n := f.nodes[q.Credential.NodeID]
		f.mu.Unlock()
		if n == nil {
			writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized, "unknown node")
			return
		}
		if err := q.Verify(n.secretHash, n.node.PublicKey, time.Now(), f.replay); err != nil {
			writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized, err.Error())
			return
		}
		h(w, r, n, body)
	}
}

func (f *Fake) handleNetmap(w http.ResponseWriter, r *http.Request, n *fakeNode, _ []byte) {
	since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	wait := api.DefaultWatchWait
	if s := r.URL.Query().Get("wait"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			wait = min(d, api.MaxWatchWait)
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		_, alive := f.nodes[n.node.ID]
		if !alive {
			f.mu.Unlock()
			writeErr(w, http.StatusUnauthorized, api.CodeUnauthorized, "node removed")
			return
		}
		if f.version > since {
			nm := f.netmapLocked(n)
			f.mu.Unlock()
			writeJSON(w, http.StatusOK, nm)
			return
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (f *Fake) handleEndpoints(w http.ResponseWriter, r *http.Request, n *fakeNode, body []byte) {
	var req api.EndpointsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "decode endpoints: "+err.Error())
		return
	}
	if len(req.Endpoints) > api.MaxEndpoints {
		writeErr(w, http.StatusBadRequest, api.CodeBadRequest, "too many endpoints")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(n.node.Endpoints, req.Endpoints) || n.node.SSHEndpoint != req.SSHEndpoint ||
		!slices.Equal(n.node.Services, req.Services) {
		n.node.Endpoints = req.Endpoints
		n.node.SSHEndpoint = req.SSHEndpoint
		n.node.Services = req.Services
		f.bumpLocked()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) handleHeartbeat(w http.ResponseWriter, r *http.Request, n *fakeNode, _ []byte) {
	f.mu.Lock()
	n.node.LastSeen = time.Now()
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) handleLeave(w http.ResponseWriter, r *http.Request, n *fakeNode, _ []byte) {
	f.mu.Lock()
	delete(f.nodes, n.node.ID)
	f.bumpLocked()
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
