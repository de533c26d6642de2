package policy

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Actions an nfs test target names: mount (a read-only or read-write
// grant) and write (a read-write grant).
const (
	NFSMount = "mount"
	NFSWrite = "write"
)

// NFS is the policy's nfs section: who may mount which export of the
// mesh's NFS servers (tunnelmesh-nfsd), read-only or read-write. Export
// names are the names nfsd's configuration gives its exports, the same on
// every NFS server of the mesh. Without an nfs section the grants are
// those of each nfsd's own configuration; with one, the section is the
// ceiling and an export's allow lists in nfsd's configuration can only
// narrow it (nfsd/README.md).
//
//	nfs:
//	  exports:
//	    artifacts:
//	      read_write: [tag:ci]
//	      read_only: ["*"]
//	    backups:
//	      read_only: [group:admins]
type NFS struct {
	Exports []NFSExport // in file order
	Line    int
}

// NFSExport is one export's grants. A node in both lists may write.
type NFSExport struct {
	Name      string
	ReadWrite []Selector
	ReadOnly  []Selector
	Line      int

	rw, ro nodeSet
}

// isExportName reports whether s is an export name as nfsd's configuration
// accepts it: one path component of 1 to 63 letters, digits, '.', '_' and
// '-', not starting with '.'. A loop rather than a regexp: the package is
// linked into every node, where a regexp compiled at init holds 59 KB.
func isExportName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validateExportName(s string) error {
	if !isExportName(s) {
		return fmt.Errorf("export name %q: want 1 to 63 letters, digits, '.', '_' or '-', not starting with '.'", s)
	}
	return nil
}

// NFSLevel returns node n's grant on export (api.NFSReadWrite,
// api.NFSReadOnly or "") and names the grant that gives it
// ("nfs.exports.artifacts.read_write"). Without an nfs section nothing is
// granted by the policy.
func (p *Policy) NFSLevel(n api.Node, export string) (level, grant string) {
	if p.NFS == nil {
		return "", ""
	}
	name := normNode(n.Name)
	for i := range p.NFS.Exports {
		e := &p.NFS.Exports[i]
		if e.Name != export {
			continue
		}
		if e.rw.contains(name, n.Tags) {
			return api.NFSReadWrite, "nfs.exports." + e.Name + ".read_write"
		}
		if e.ro.contains(name, n.Tags) {
			return api.NFSReadOnly, "nfs.exports." + e.Name + ".read_only"
		}
	}
	return "", ""
}

// NFSAllowed reports whether n may perform action (mount or write) on
// export, and names the grant that allows it.
func (p *Policy) NFSAllowed(n api.Node, action, export string) (grant string, ok bool) {
	level, grant := p.NFSLevel(n, export)
	switch {
	case level == api.NFSReadWrite, level == api.NFSReadOnly && action == NFSMount:
		return grant, true
	}
	return "", false
}

// NFSExports returns n's grants by export name; nil when it has none.
func (p *Policy) NFSExports(n api.Node) map[string]string {
	var out map[string]string
	if p.NFS == nil {
		return nil
	}
	for _, e := range p.NFS.Exports {
		if level, _ := p.NFSLevel(n, e.Name); level != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[e.Name] = level
		}
	}
	return out
}

// compileNFS sets Filter.NFS on every node that publishes api.ServiceNFS,
// when the policy has an nfs section: each member's NFSExports by name.
func compileNFS(pol *Policy, nodes []api.Node, out map[string]*api.Filter) {
	if pol.NFS == nil {
		return
	}
	var grants *api.NFSGrants
	for _, n := range nodes {
		if !slices.ContainsFunc(n.Services, func(s api.Service) bool { return s.Name == api.ServiceNFS }) {
			continue
		}
		if grants == nil {
			grants = &api.NFSGrants{Nodes: make(map[string]map[string]string, len(nodes))}
			for _, m := range nodes {
				if g := pol.NFSExports(m); g != nil {
					grants.Nodes[normNode(m.Name)] = g
				}
			}
		}
		out[normNode(n.Name)].NFS = grants
	}
}

var nfsLevels = []string{"read_write", "read_only"}

func (ps *parser) nfs(pol *Policy, n *yaml.Node, path string) *NFS {
	entries, ok := ps.namedGrants(n, path, "exports", nfsLevels, "grants nothing: name read_write or read_only", validateExportName)
	if !ok {
		return nil
	}
	s := &NFS{Line: n.Line}
	for _, g := range entries {
		e := NFSExport{Name: g.name, Line: g.line}
		for _, l := range g.levels {
			if l.level == "read_write" {
				e.ReadWrite, e.rw = l.sels, resolve(pol, l.sels)
			} else {
				e.ReadOnly, e.ro = l.sels, resolve(pol, l.sels)
			}
		}
		s.Exports = append(s.Exports, e)
	}
	return s
}

// ParseNFSTarget parses an nfs test target "ACTION:EXPORT"
// ("write:artifacts", "mount:backups").
func ParseNFSTarget(s string) (Target, error) {
	action, export, found := strings.Cut(s, ":")
	action = strings.ToLower(strings.TrimSpace(action))
	if !found || (action != NFSMount && action != NFSWrite) {
		return Target{}, fmt.Errorf("invalid nfs target %q: want mount:EXPORT or write:EXPORT", s)
	}
	if err := validateExportName(export); err != nil {
		return Target{}, fmt.Errorf("invalid nfs target %q: %v", s, err)
	}
	return Target{Spec: s, Action: action, Export: export}, nil
}

// nfsResults evaluates t's nfs targets for src (srcOK false: src is in
// neither the mesh nor test_nodes).
func (p *Policy) nfsResults(t Test, src api.Node, srcOK bool) []TestResult {
	var results []TestResult
	for _, side := range []struct {
		expect  string
		targets []Target
	}{{"accept", t.NFSAccept}, {"deny", t.NFSDeny}} {
		for _, tg := range side.targets {
			res := TestResult{Test: t.Name, From: t.From, Target: tg, Expect: side.expect, Line: tg.Line}
			if !srcOK {
				res.Err = fmt.Sprintf("node %q is neither in the mesh nor under test_nodes", t.From)
			} else {
				grant, ok := p.NFSAllowed(src, tg.Action, tg.Export)
				res.Rule = grant
				res.Pass = ok == (side.expect == "accept")
			}
			results = append(results, res)
		}
	}
	return results
}

// nfsString is TestResult.String for an nfs target.
func (r TestResult) nfsString(verdict string) string {
	why := "no grant allows it"
	switch {
	case r.Err != "":
		why = r.Err
	case r.Rule != "":
		why = "allowed by grant " + r.Rule
	}
	verb := "can"
	if r.Expect == "deny" {
		verb = "cannot"
	}
	return fmt.Sprintf("%s  %s: %s %s %s export %s (%s)", verdict, r.Test, r.From, verb, r.Target.Action, r.Target.Export, why)
}

// nfsFailure is the message of Check for a failed nfs target.
func (r TestResult) nfsFailure() string {
	if r.Err != "" {
		return fmt.Sprintf("test %q: %s", r.Test, r.Err)
	}
	verb := "should be able to"
	if r.Expect == "deny" {
		verb = "should not be able to"
	}
	msg := fmt.Sprintf("test %q failed: %s %s %s export %s", r.Test, r.From, verb, r.Target.Action, r.Target.Export)
	if r.Rule != "" {
		return msg + " but grant " + r.Rule + " allows it"
	}
	return msg + " but no grant allows it"
}
