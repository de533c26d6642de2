package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.route(api.PathInfo, "info", map[string]handlerFunc{http.MethodGet: s.handleInfo})
	s.route(api.PathJoin, "join", map[string]handlerFunc{http.MethodPost: s.handleJoin})
	s.route(api.PathNetmap, "netmap", map[string]handlerFunc{http.MethodGet: s.handleNetmap})
	s.route(api.PathEndpoints, "endpoints", map[string]handlerFunc{http.MethodPost: s.handleEndpoints})
	s.route(api.PathHeartbeat, "heartbeat", map[string]handlerFunc{http.MethodPost: s.handleHeartbeat})
	s.route(api.PathLeave, "leave", map[string]handlerFunc{http.MethodPost: s.handleLeave})
	s.route(api.PathAdminTokens, "admin_tokens", map[string]handlerFunc{
		http.MethodGet: s.admin(s.handleListTokens), http.MethodPost: s.admin(s.handleCreateToken)})
	s.route(api.PathAdminTokens+"/{id}", "admin_token", map[string]handlerFunc{http.MethodDelete: s.admin(s.handleRevokeToken)})
	s.route(api.PathAdminNodes, "admin_nodes", map[string]handlerFunc{http.MethodGet: s.admin(s.handleListNodes)})
	s.route(api.PathAdminNodes+"/{ref}", "admin_node", map[string]handlerFunc{http.MethodDelete: s.admin(s.handleRemoveNode)})
	s.route(api.PathHealth, "healthz", map[string]handlerFunc{http.MethodGet: s.handleHealth})
	s.policyRoutes()
	s.route("/", "not_found", map[string]handlerFunc{})
}

// route registers a path with one handler per method; other methods get a
// JSON 405, unknown paths (route "/") a JSON 404.
func (s *Server) route(path, name string, methods map[string]handlerFunc) {
	allow := make([]string, 0, len(methods))
	for m := range methods {
		allow = append(allow, m)
	}
	s.mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "route", name, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					writeError(sw, errorf(http.StatusInternalServerError, api.CodeInternal, "internal error"))
				}
			}
			s.met.RequestDuration.WithLabelValues(name, strconv.Itoa(sw.code())).Observe(time.Since(start).Seconds())
		}()
		if e := s.serve(sw, r, path, methods, allow); e != nil {
			if e.status >= 500 {
				s.log.Error("request failed", "route", name, "err", e.msg)
				e = errorf(e.status, e.code, "internal error")
			}
			writeError(sw, e)
		}
	}))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, path string, methods map[string]handlerFunc, allow []string) *apiError {
	if path == "/" {
		return errorf(http.StatusNotFound, api.CodeNotFound, "no such API path %.100q", r.URL.Path)
	}
	if v := r.Header.Get(api.ProtocolHeader); v != "" && v != strconv.Itoa(api.ProtocolVersion) {
		return errorf(http.StatusUpgradeRequired, api.CodeVersion, "protocol version %.10q not supported; this registry speaks %d", v, api.ProtocolVersion)
	}
	h, ok := methods[r.Method]
	if !ok {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, api.CodeBadRequest, "method %s not allowed on %s", r.Method, path)
	}
	return h(w, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) *apiError {
	writeJSON(w, http.StatusOK, api.Info{
		ProtocolVersions: []int{api.ProtocolVersion},
		MeshID:           s.set.Mesh.ID,
		Version:          s.set.SoftwareVersion,
	})
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) *apiError {
	if _, err := s.st.Version(r.Context()); err != nil {
		return errorf(http.StatusServiceUnavailable, api.CodeInternal, "store unavailable")
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": s.Version()})
	return nil
}
