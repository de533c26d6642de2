package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// TestDockerLabelNeverWidens: a container's allow list narrows the docker
// ceiling and never widens it, whatever it names.
func TestDockerLabelNeverWidens(t *testing.T) {
	pol, err := Parse("p.yaml", []byte("tags: [admin, db]\ngroups:\n  admins: [tag:admin]\ndocker:\n  from: group:admins\n"))
	if err != nil {
		t.Fatal(err)
	}
	host := func(allow string) api.Node {
		return api.Node{Name: "host", IP: netip.MustParseAddr("100.64.0.1"),
			Services: []api.Service{{Name: "web", Protocol: "tcp", Port: 80, Owner: api.ServiceOwnerDocker, Allow: allow}}}
	}
	admin := api.Node{Name: "laptop", IP: netip.MustParseAddr("100.64.0.2"), Tags: []string{"admin"}}
	db := api.Node{Name: "db", IP: netip.MustParseAddr("100.64.0.3"), Tags: []string{"db"}}
	for _, tc := range []struct {
		allow string
		want  []string // sources
	}{
		{"", []string{"100.64.0.2/32"}},
		{"*", []string{"100.64.0.2/32"}},
		{"tag:db", nil},
		{"db", nil},
		{"group:unknown", nil},
		{"laptop", []string{"100.64.0.2/32"}},
		{"not a selector", nil},
	} {
		h := host(tc.allow)
		f := Compile(pol, []api.Node{h, admin, db}, 1)["host"]
		var got []string
		for _, r := range f.Rules {
			for _, s := range r.Sources {
				got = append(got, s.String())
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("allow %q: sources %v, want %v", tc.allow, got, tc.want)
		}
		if _, ok := pol.Allowed(db, h, "tcp", 80); ok {
			t.Errorf("allow %q: db (outside the ceiling) is allowed", tc.allow)
		}
	}
	// A service not owned by dockerwatch gets nothing from the section.
	h := host("")
	h.Services[0].Owner = ""
	if f := Compile(pol, []api.Node{h, admin}, 1)["host"]; len(f.Rules) != 0 {
		t.Errorf("non-docker service compiled to %v", f.Rules)
	}
}

func TestDockerParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker:\n  to: \"*\"\n", `p.yaml:2: docker: missing "from"`},
		{"docker:\n  from: \"*\"\n  form: x\n", "p.yaml:3: docker.form: unknown key (known keys: from, to, ports)"},
		{"docker:\n  from: tag:nope\n", `p.yaml:2: docker.from: tag "nope" is not declared under tags`},
		{"docker:\n  from: \"*\"\n  ports: [90-80]\n", `p.yaml:3: docker.ports[0]: invalid port range "90-80"`},
		{"docker: []\n", "p.yaml:1: docker: must be a mapping"},
	} {
		_, err := Parse("p.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
