package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
)

// admin wraps an admin handler with the admin credential check. Admin
// rights come only from that credential.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !s.adminCred.Check(strings.TrimSpace(cred)) {
			s.met.AuthFailures.WithLabelValues("admin").Inc()
			s.failLog.log(s.now(), "admin authentication failed", "source", sourceAddr(r), "method", r.Method, "path", r.URL.Path)
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "admin credential required (Authorization: Bearer <credential>)")
		}
		return h(w, r)
	}
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.CreateTokenRequest
	if _, e := decodeBody(w, r, &req); e != nil {
		return e
	}
	tags, err := normalizeTags(req.Tags)
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "tags: %v", err)
	}
	expiry := time.Duration(req.Expiry)
	if expiry > api.MaxTokenExpiry {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "expiry %s: longer than the maximum %s (10 years)", expiry, api.MaxTokenExpiry)
	}
	if expiry == 0 {
		expiry = s.set.TokenDefaultExpiry
	}
	tok, err := jointoken.New(s.set.Pin)
	if err != nil {
		return internal(err)
	}
	now := s.now()
	hash := tok.SecretHash()
	t := store.Token{
		ID: tok.ID, SecretHash: hash[:], Reusable: req.Reusable, Tags: tags,
		CreatedAt: now, ExpiresAt: now.Add(expiry),
	}
	if err := s.st.CreateToken(r.Context(), t); err != nil {
		return internal(err)
	}
	s.log.Info("join token created", "token_id", tok.ID, "reusable", req.Reusable, "expires", t.ExpiresAt.UTC())
	writeJSON(w, http.StatusCreated, api.CreateTokenResponse{Token: tok.String(), Info: tokenInfo(t)})
	return nil
}

func normalizeTags(in []string) ([]string, error) {
	if len(in) > api.MaxTags {
		return nil, fmt.Errorf("%d tags, at most %d allowed", len(in), api.MaxTags)
	}
	var out []string
	seen := map[string]bool{}
	for _, t := range in {
		t = api.NormalizeName(t)
		if err := api.ValidateTag(t); err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func tokenInfo(t store.Token) api.TokenInfo {
	return api.TokenInfo{
		ID: t.ID, Reusable: t.Reusable, Tags: t.Tags, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: t.ExpiresAt.UTC(), Uses: t.Uses, Revoked: t.Revoked,
	}
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request) *apiError {
	toks, err := s.st.Tokens(r.Context())
	if err != nil {
		return internal(err)
	}
	out := make([]api.TokenInfo, 0, len(toks))
	for _, t := range toks {
		out = append(out, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if !jointoken.ValidID(id) {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no token %.40q", id)
	}
	err := s.st.RevokeToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no token %q", id)
	}
	if err != nil {
		return internal(err)
	}
	s.log.Info("join token revoked", "token_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleListNodes(w http.ResponseWriter, r *http.Request) *apiError {
	_, nodes, err := s.st.Nodes(r.Context())
	if err != nil {
		return internal(err)
	}
	now := s.now()
	out := make([]api.NodeInfo, 0, len(nodes))
	s.seenMu.Lock()
	for _, n := range nodes {
		seen := n.LastSeen
		if t, ok := s.seen[n.ID]; ok && t.After(seen) {
			seen = t
		}
		out = append(out, api.NodeInfo{
			ID: n.ID, Name: n.Name, IP: n.IP, Fingerprint: n.PublicKey.Fingerprint(), PublicKey: n.PublicKey,
			Tags: n.Tags, Endpoints: n.Endpoints, Online: s.isOnlineLocked(n.ID, now), LastSeen: seen.UTC(),
			CreatedAt: n.CreatedAt.UTC(),
		})
	}
	s.seenMu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleRemoveNode(w http.ResponseWriter, r *http.Request) *apiError {
	ref := r.PathValue("ref")
	if ref == "" || len(ref) > 100 {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no node %.40q", ref)
	}
	if e := s.removeNode(r, strings.ToLower(ref)); e != nil {
		return e
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
