package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

func sourceAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// handleJoin registers a node. Failed attempts count against the source's
// rate limit; a source over it gets 429 without its request being looked at.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) *apiError {
	src := sourceAddr(r)
	now := s.now()
	if !s.limiter.Allowed(src, now) {
		s.met.Joins.WithLabelValues(metrics.JoinRateLimited).Inc()
		s.failLog.log(now, "join refused", "source", src, "result", metrics.JoinRateLimited, "status", http.StatusTooManyRequests)
		w.Header().Set("Retry-After", "60")
		return errorf(http.StatusTooManyRequests, api.CodeRateLimited, "too many failed join attempts from %s; try again later", src)
	}
	resp, e := s.join(w, r)
	if e != nil {
		result := metrics.JoinBadRequest
		switch e.code {
		case api.CodeTokenInvalid:
			result = metrics.JoinTokenInvalid
		case api.CodeConflict:
			result = metrics.JoinConflict
		case api.CodeRangeFull:
			result = metrics.JoinRangeFull
		case api.CodeInternal:
			result = metrics.JoinError
		case api.CodeUnauthorized:
			result = metrics.JoinProofInvalid
		}
		if e.code == api.CodeBadRequest && errors.Is(e.cause, nodeauth.ErrJoinUnsigned) {
			result = metrics.JoinProofInvalid
		}
		s.met.Joins.WithLabelValues(result).Inc()
		s.failLog.log(now, "join refused", "source", src, "result", result, "status", e.status, "reason", e.msg)
		if e.status < 500 && e.code != api.CodeRangeFull {
			s.limiter.Take(src, now)
		}
		return e
	}
	s.met.Joins.WithLabelValues(metrics.JoinOK).Inc()
	s.log.Info("node joined", "node", resp.Name, "id", resp.NodeID, "ip", resp.IP, "source", src)
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) (*api.JoinResponse, *apiError) {
	var req api.JoinRequest
	if _, e := decodeBody(w, r, &req); e != nil {
		return nil, e
	}
	if req.ProtocolVersion != api.ProtocolVersion {
		return nil, errorf(http.StatusUpgradeRequired, api.CodeVersion, "protocol_version %d not supported; this registry speaks %d", req.ProtocolVersion, api.ProtocolVersion)
	}
	tok, err := jointoken.Parse(req.Token)
	if err != nil {
		return nil, errorf(http.StatusUnauthorized, api.CodeTokenInvalid, "token: %v", err)
	}
	if tok.Pin != s.set.Pin {
		return nil, errorf(http.StatusUnauthorized, api.CodeTokenInvalid, "token: issued for another registry (certificate pin differs)")
	}
	name := api.NormalizeName(req.Name)
	if err := api.ValidateName(name); err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "name: %v", err)
	}
	if req.PublicKey.IsZero() {
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "public_key is required")
	}
	if err := req.PublicKey.Validate(); err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "public_key: %v", err)
	}
	// Nothing about a key's registration changes unless the joiner holds
	// the key: it signs the token ID, this registry's pin, the name and a
	// timestamp (nodeauth.VerifyJoin).
	if err := nodeauth.VerifyJoin(&req, tok.ID, s.set.Pin, s.now(), s.replay); err != nil {
		if errors.Is(err, nodeauth.ErrJoinUnsigned) {
			e := errorf(http.StatusBadRequest, api.CodeBadRequest, "signature is required: a join must be signed by the node key (timestamp, signature; see nodeauth.SignJoin)")
			e.cause = err
			return nil, e
		}
		return nil, errorf(http.StatusUnauthorized, api.CodeUnauthorized, "join signature: %v", err)
	}
	eps, err := validateEndpoints(req.Endpoints)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "endpoints: %v", err)
	}
	if err := validateSSH(req.SSHEndpoint, req.SSHHostKey, req.SSHUser, req.SSHPacketPort); err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	}
	svcs, err := validateServices(req.Services)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, api.CodeBadRequest, "services: %v", err)
	}
	cred := nodeauth.Credential{NodeID: newID("n"), Secret: newSecret()}
	credHash := cred.SecretHash()
	var homeRelay string
	if _, ok := s.st.(store.Relays); ok {
		// The node will watch here and listen on this replica's relay.
		homeRelay = s.set.HomeRelay
	}
	res, err := s.st.Join(r.Context(), store.JoinParams{
		HomeRelay:       homeRelay,
		TokenID:         tok.ID,
		TokenSecretHash: tok.SecretHash(),
		Name:            name,
		PublicKey:       req.PublicKey,
		Endpoints:       eps,
		SSHEndpoint:     req.SSHEndpoint,
		SSHHostKey:      req.SSHHostKey,
		SSHUser:         req.SSHUser,
		SSHPacketPort:   req.SSHPacketPort,
		Services:        svcs,
		NewNodeID:       cred.NodeID,
		CredentialHash:  credHash[:],
		Now:             s.now(),
	})
	switch {
	case errors.Is(err, store.ErrTokenInvalid):
		return nil, errorf(http.StatusUnauthorized, api.CodeTokenInvalid, "token is unknown, used, expired or revoked")
	case errors.Is(err, store.ErrNameTaken):
		return nil, errorf(http.StatusConflict, api.CodeConflict, "name %q is taken by another node key", name)
	case errors.Is(err, store.ErrRangeFull):
		return nil, errorf(http.StatusConflict, api.CodeRangeFull, "no free address in the mesh prefix %s", s.set.Mesh.CIDR)
	case err != nil:
		return nil, errorf(http.StatusInternalServerError, api.CodeInternal, "%v", err)
	}
	cred.NodeID = res.Node.ID
	s.seenMu.Lock()
	s.seen[res.Node.ID] = s.now()
	s.seenMu.Unlock()
	if err := s.refreshChange(r.Context(), store.Change{Version: res.Version, Node: res.Node.ID}); err != nil {
		return nil, errorf(http.StatusInternalServerError, api.CodeInternal, "%v", err)
	}
	return &api.JoinResponse{
		NodeID:     res.Node.ID,
		Name:       res.Node.Name,
		IP:         res.Node.IP,
		MeshID:     s.set.Mesh.ID,
		MeshCIDR:   s.set.Mesh.CIDR,
		PSK:        s.hub.current().psk.Current,
		Credential: cred.String(),
		Tags:       res.Node.Tags,
	}, nil
}

// validateEndpoints checks reported UDP endpoints and drops duplicates.
func validateEndpoints(eps []netip.AddrPort) ([]netip.AddrPort, error) {
	if len(eps) > api.MaxEndpoints {
		return nil, fmt.Errorf("%d endpoints, at most %d allowed", len(eps), api.MaxEndpoints)
	}
	var out []netip.AddrPort
	seen := make(map[netip.AddrPort]bool, len(eps))
	for i, ep := range eps {
		ep = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
		if err := validateAddrPort(ep); err != nil {
			return nil, fmt.Errorf("[%d]: %v", i, err)
		}
		if !seen[ep] {
			seen[ep] = true
			out = append(out, ep)
		}
	}
	return out, nil
}

// validateSSH checks a node's SSH fields: the endpoint's address, and that
// host key, user and packet port fit together (api.ValidateSSH).
func validateSSH(ep netip.AddrPort, hostKey *nodekey.PublicKey, user string, packetPort uint16) error {
	if err := validateSSHEndpoint(ep); err != nil {
		return fmt.Errorf("ssh_endpoint: %w", err)
	}
	return api.ValidateSSH(ep, hostKey, user, packetPort)
}

func validateSSHEndpoint(ep netip.AddrPort) error {
	if ep == (netip.AddrPort{}) {
		return nil
	}
	return validateAddrPort(ep)
}

// validateAddrPort checks an address peers will send to. Addresses that
// would point peers at themselves or at their own link (loopback,
// link-local such as the cloud metadata address 169.254.169.254,
// unspecified, multicast, broadcast) are refused: a node could otherwise
// steer every peer's packets to the peer's own local services. Private and
// ULA addresses (10/8, 172.16/12, 192.168/16, fd00::/8) are allowed, as
// peers on the same LAN use them.
func validateAddrPort(ep netip.AddrPort) error {
	a := ep.Addr().Unmap()
	switch {
	case !ep.IsValid():
		return fmt.Errorf("invalid address")
	case ep.Port() == 0:
		return fmt.Errorf("%s: port 0", ep)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s: not a unicast address", ep)
	case a.IsLoopback():
		return fmt.Errorf("%s: loopback addresses are not reachable by peers", ep)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("%s: link-local addresses are not reachable by peers", ep)
	case a.Zone() != "":
		return fmt.Errorf("%s: zoned addresses are not reachable by peers", ep)
	}
	return nil
}

func newID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}

func newSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
