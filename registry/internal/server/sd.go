package server

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Where each component serves /metrics on a node's mesh address. A node
// tells the registry by publishing a tcp service named
// MetricsServicePrefix+component (e.g. "metrics-agent" on 9101, or
// "metrics-storage", "metrics-nfsd" and "metrics-dockerwatch", which the
// agent's --advertise-storage and --advertise-nfs and dockerwatch publish,
// ports in shared/api/metrics.go); without
// one, the defaults below apply: the agent on DefaultAgentMetricsPort, and
// on nodes that publish mesh DNS (api.ServiceDNS) meshdns on
// DefaultMeshDNSMetricsPort (CoreDNS's prometheus plugin's port).
const (
	MetricsServicePrefix      = api.MetricsServicePrefix
	DefaultAgentMetricsPort   = 9101
	DefaultMeshDNSMetricsPort = 9153
)

// Service discovery target labels.
const (
	LabelNode    = "node"
	LabelNodeID  = "node_id"
	LabelService = "service"
	LabelMeshID  = "mesh_id"
	LabelTags    = "tags" // ",a,b," so that tags=~".*,a,.*" matches one tag; "" for none
)

// SDSettings configure the Prometheus service discovery endpoint.
type SDSettings struct {
	// Credentials are the scrape tokens the endpoint accepts.
	Credentials *scrapecred.Store
	// RegistryTarget, when set, is listed as the registry's own target
	// (host:port of its HTTPS API, scheme https).
	RegistryTarget string
}

// SDGroup is one entry of a Prometheus http_sd document.
type SDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// EnableServiceDiscovery mounts GET scrapecred.PathSD (Prometheus
// http_sd_configs, authenticated by a scrape token) and the admin calls
// that manage scrape tokens. Call it before serving.
func (s *Server) EnableServiceDiscovery(set SDSettings) {
	sd := &sdHandlers{s: s, set: set}
	s.route(scrapecred.PathSD, "sd", map[string]handlerFunc{http.MethodGet: sd.scrape(sd.handleSD)})
	s.route(scrapecred.PathAdmin, "admin_scrape_tokens", map[string]handlerFunc{
		http.MethodGet: s.admin(sd.handleList), http.MethodPost: s.admin(sd.handleCreate)})
	s.route(scrapecred.PathAdmin+"/{id}", "admin_scrape_token", map[string]handlerFunc{
		http.MethodDelete: s.admin(sd.handleRevoke)})
}

// sdHandlers serve the service discovery endpoint and the scrape token
// admin calls.
type sdHandlers struct {
	s   *Server
	set SDSettings
}

// scrape wraps a handler with the scrape token check.
func (sd *sdHandlers) scrape(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !sd.set.Credentials.Check(strings.TrimSpace(cred), sd.s.now()) {
			sd.s.met.AuthFailures.WithLabelValues("scrape").Inc()
			return errorf(http.StatusUnauthorized, api.CodeUnauthorized, "scrape token required (Authorization: Bearer <token>)")
		}
		return h(w, r)
	}
}

// handleSD answers with the targets of every registered node (online or
// not, so that a node that stops answering shows as down) and the
// registry's own, optionally only those of one ?service=.
func (sd *sdHandlers) handleSD(w http.ResponseWriter, r *http.Request) *apiError {
	only := r.URL.Query().Get("service")
	writeJSON(w, http.StatusOK, sd.groups(only))
	return nil
}

func (sd *sdHandlers) groups(only string) []SDGroup {
	snap := sd.s.hub.current()
	out := []SDGroup{}
	add := func(service, target string, labels map[string]string) {
		if only != "" && only != service {
			return
		}
		labels[LabelService] = service
		labels[LabelMeshID] = sd.s.set.Mesh.ID
		out = append(out, SDGroup{Targets: []string{target}, Labels: labels})
	}
	if sd.set.RegistryTarget != "" {
		add("registry", sd.set.RegistryTarget, map[string]string{"__scheme__": "https"})
	}
	for _, e := range snap.order {
		n := &e.node
		for _, t := range nodeMetricsTargets(n) {
			tags := ""
			if len(n.Tags) > 0 {
				tags = "," + strings.Join(n.Tags, ",") + ","
			}
			add(t.service, net.JoinHostPort(n.IP.String(), strconv.Itoa(int(t.port))), map[string]string{
				LabelNode:   n.Name,
				LabelNodeID: n.ID,
				LabelTags:   tags,
			})
		}
	}
	return out
}

type metricsTarget struct {
	service string
	port    uint16
}

// nodeMetricsTargets lists the components of a node that serve metrics, by
// component name.
func nodeMetricsTargets(n *api.Node) []metricsTarget {
	var out []metricsTarget
	published := func(component string) bool {
		return slices.ContainsFunc(out, func(t metricsTarget) bool { return t.service == component })
	}
	for _, sv := range n.Services {
		if c, ok := strings.CutPrefix(sv.Name, MetricsServicePrefix); ok && c != "" && sv.Protocol == "tcp" && !published(c) {
			out = append(out, metricsTarget{service: c, port: sv.Port})
		}
	}
	if !published("agent") {
		out = append(out, metricsTarget{service: "agent", port: DefaultAgentMetricsPort})
	}
	dns := slices.ContainsFunc(n.Services, func(sv api.Service) bool { return sv.Name == api.ServiceDNS })
	if dns && !published("meshdns") {
		out = append(out, metricsTarget{service: "meshdns", port: DefaultMeshDNSMetricsPort})
	}
	slices.SortFunc(out, func(a, b metricsTarget) int { return cmpString(a.service, b.service) })
	return out
}

func (sd *sdHandlers) handleCreate(w http.ResponseWriter, r *http.Request) *apiError {
	var req scrapecred.CreateRequest
	if _, e := decodeBody(w, r, &req); e != nil {
		return e
	}
	tok, info, err := sd.set.Credentials.Create(req.Name, time.Duration(req.Expiry), sd.s.now())
	if err != nil {
		return errorf(http.StatusBadRequest, api.CodeBadRequest, "%v", err)
	}
	sd.s.log.Info("scrape token created", "scrape_token_id", info.ID, "name", info.Name, "expires", info.ExpiresAt)
	writeJSON(w, http.StatusCreated, scrapecred.CreateResponse{Token: tok, Info: info})
	return nil
}

func (sd *sdHandlers) handleList(w http.ResponseWriter, r *http.Request) *apiError {
	writeJSON(w, http.StatusOK, sd.set.Credentials.List())
	return nil
}

func (sd *sdHandlers) handleRevoke(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	if err := sd.set.Credentials.Revoke(id); err != nil {
		if errors.Is(err, scrapecred.ErrNotFound) {
			return errorf(http.StatusNotFound, api.CodeNotFound, "no scrape token %.40q", id)
		}
		return internal(err)
	}
	sd.s.log.Info("scrape token revoked", "scrape_token_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
