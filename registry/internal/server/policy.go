package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/policystore"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// PolicyAdmin is a Policy that the admin API can read and replace and that
// wants the mesh's nodes (policystore.Store is one). With a Policy that is
// not a PolicyAdmin, the admin policy API answers 404.
type PolicyAdmin interface {
	Policy
	// SetNodes is called with every node whenever the snapshot is rebuilt,
	// before the snapshot is published.
	SetNodes(nodes []api.Node)
	// Get returns a version (0: the current one); policystore.ErrNotFound.
	Get(version uint64) (policy.Version, error)
	// Versions lists the kept versions, newest first.
	Versions() ([]policy.VersionInfo, error)
	// Put checks, tests and stores a policy (policystore.ErrInvalid,
	// ErrTestsFailed, ErrConflict); nothing changes on error.
	Put(doc []byte, ifVersion uint64, now time.Time) (policy.PutResponse, error)
}

func (s *Server) policyRoutes() {
	s.route(api.PathAdminPolicy, "admin_policy", map[string]handlerFunc{
		http.MethodGet: s.admin(s.handleGetPolicy), http.MethodPut: s.admin(s.handlePutPolicy)})
	s.route(api.PathAdminPolicy+policy.PathVersionsSuffix, "admin_policy_versions", map[string]handlerFunc{
		http.MethodGet: s.admin(s.handlePolicyVersions)})
}

// policySetNodes hands the snapshot's nodes to the policy, if it wants them.
func (s *Server) policySetNodes(snap *snapshot) {
	pa, ok := s.set.Policy.(PolicyAdmin)
	if !ok {
		return
	}
	nodes := make([]api.Node, len(snap.order))
	for i, e := range snap.order {
		nodes[i] = e.node
	}
	pa.SetNodes(nodes)
}

func (s *Server) policyAdmin() (PolicyAdmin, *apiError) {
	pa, ok := s.set.Policy.(PolicyAdmin)
	if !ok {
		return nil, errorf(http.StatusNotFound, api.CodeNotFound, "this registry has no policy store")
	}
	return pa, nil
}

func policyError(err error) *apiError {
	switch {
	case errors.Is(err, policystore.ErrNotFound):
		return errorf(http.StatusNotFound, api.CodeNotFound, "%v", err)
	case errors.Is(err, policystore.ErrInvalid), errors.Is(err, policystore.ErrTestsFailed):
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	case errors.Is(err, policystore.ErrConflict):
		return errorf(http.StatusConflict, api.CodeConflict, "%v", err)
	}
	return internal(err)
}

func (s *Server) handleGetPolicy(w http.ResponseWriter, r *http.Request) *apiError {
	pa, e := s.policyAdmin()
	if e != nil {
		return e
	}
	var version uint64
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return errorf(http.StatusBadRequest, api.CodeBadRequest, "version: %.30q is not a version number", v)
		}
		version = n
	}
	doc, err := pa.Get(version)
	if err != nil {
		return policyError(err)
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (s *Server) handlePolicyVersions(w http.ResponseWriter, r *http.Request) *apiError {
	pa, e := s.policyAdmin()
	if e != nil {
		return e
	}
	vs, err := pa.Versions()
	if err != nil {
		return internal(err)
	}
	if vs == nil {
		vs = []policy.VersionInfo{}
	}
	writeJSON(w, http.StatusOK, vs)
	return nil
}

func (s *Server) handlePutPolicy(w http.ResponseWriter, r *http.Request) *apiError {
	pa, e := s.policyAdmin()
	if e != nil {
		return e
	}
	var req policy.PutRequest
	if _, e := decodeBody(w, r, &req); e != nil {
		return e
	}
	resp, err := pa.Put([]byte(req.Policy), req.IfVersion, s.now())
	if err != nil {
		return policyError(err)
	}
	if resp.Changed {
		// Every node's netmap carries its filter: bump the mesh version so
		// every watcher gets the new one now.
		if err := s.Changed(r.Context()); err != nil {
			return internal(err)
		}
		s.log.Info("policy changed", "policy_version", resp.Version)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
