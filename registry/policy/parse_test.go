package policy

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the whole error text
	}{
		{"empty", "", "policy.yaml: policy is empty"},
		{"not a mapping", "- a\n", "policy.yaml:1: must be a mapping, not a list"},
		{"syntax", "rules: [\n", "policy.yaml:1: did not find expected node content"},
		{"bare star", "rules:\n  - {from: *, to: b, proto: icmp}\n", `policy.yaml:2: did not find expected alphabetic or numeric character (a bare * starts a YAML alias: write "*" in quotes)`},
		{"unknown top key", "rulez: []\n", "policy.yaml:1: rulez: unknown key (known keys: groups, tags, rules, tests, test_nodes, docker, storage, nfs)"},
		{"two documents", "rules: []\n---\nrules: []\n", "policy.yaml:2: more than one YAML document"},
		{"bad port range", `
rules:
  - {from: "*", to: "*", proto: icmp}
  - {from: "*", to: "*", proto: icmp, name: b}
  - {from: "*", to: "*", proto: icmp, name: c}
  - from: a
    to: b
    proto: tcp
    ports: [90-80]
`, `policy.yaml:9: rules[3].ports[0]: invalid port range "90-80"`},
		{"port zero", "rules:\n  - {from: a, to: b, proto: tcp, ports: 0}\n", `policy.yaml:2: rules[0].ports: invalid port "0"`},
		{"port too big", "rules:\n  - {from: a, to: b, proto: tcp, ports: [65536]}\n", `policy.yaml:2: rules[0].ports[0]: invalid port "65536"`},
		{"ports with icmp", "rules:\n  - from: a\n    to: b\n    proto: icmp\n    ports: [1]\n", `policy.yaml:5: rules[0].ports: ports apply only to tcp and udp, not to icmp`},
		{"unknown rule key", "rules:\n  - from: a\n    to: b\n    proto: tcp\n    port: 22\n", `policy.yaml:5: rules[0].port: unknown key (known keys: name, description, from, to, proto, ports)`},
		{"missing proto", "rules:\n  - from: a\n    to: b\n", `policy.yaml:2: rules[0]: missing "proto" (tcp, udp, icmp or any)`},
		{"missing from", "rules:\n  - to: b\n    proto: tcp\n", `policy.yaml:2: rules[0]: missing "from"`},
		{"bad protocol", "rules:\n  - {from: a, to: b, proto: [tcp, sctp]}\n", `policy.yaml:2: rules[0].proto[1]: unknown protocol "sctp" (want tcp, udp, icmp or any)`},
		{"undeclared tag", "rules:\n  - {from: tag:web, to: b, proto: tcp}\n", `policy.yaml:2: rules[0].from: tag "web" is not declared under tags`},
		{"undefined group", "groups:\n  a: [group:b]\n", `policy.yaml:2: groups.a[0]: group "b" is not defined under groups`},
		{"bad selector", "rules:\n  - {from: host:a, to: b, proto: tcp}\n", `policy.yaml:2: rules[0].from: invalid selector "host:a": want *, a node name, tag:NAME or group:NAME`},
		{"bad node name", "rules:\n  - {from: [a_b], to: b, proto: tcp}\n", `policy.yaml:2: rules[0].from[0]: invalid selector "a_b": name "a_b": only lowercase letters, digits and hyphens are allowed`},
		{"group cycle", "groups:\n  a: [group:b]\n  b: [group:c]\n  c: [group:a]\n", `policy.yaml:2: groups.a: groups form a cycle: a -> b -> c -> a`},
		{"self cycle", "groups:\n  a: [x, group:a]\n", `policy.yaml:2: groups.a: groups form a cycle: a -> a`},
		{"duplicate rule name", "rules:\n  - {name: x, from: a, to: b, proto: tcp}\n  - {name: x, from: a, to: b, proto: udp}\n", `policy.yaml:3: rules[1]: rule name "x" is already used by rules[0]`},
		{"duplicate key", "rules: []\nrules: []\n", `policy.yaml:2: rules: duplicate key`},
		{"alias", "groups:\n  a: &x [n1]\n  b: *x\n", `policy.yaml:3: groups.b: YAML aliases are not supported`},
		{"test without targets", "tests:\n  - {from: a}\n", `policy.yaml:2: tests[0]: a test needs "accept", "deny", "storage_accept", "storage_deny", "nfs_accept" or "nfs_deny" targets`},
		{"bad target", "tests:\n  - {from: a, accept: [b:22/sctp]}\n", `policy.yaml:2: tests[0].accept[0]: invalid target "b:22/sctp": protocol must be tcp, udp or icmp`},
		{"icmp target with port", "tests:\n  - {from: a, deny: b:7/icmp}\n", `policy.yaml:2: tests[0].deny: invalid target "b:7/icmp": icmp has no port (write NODE/icmp)`},
		{"target without port", "tests:\n  - {from: a, deny: [b]}\n", `policy.yaml:2: tests[0].deny[0]: invalid target "b": want NODE:PORT[/tcp|/udp] or NODE/icmp`},
		{"test node with group", "groups: {g: [a]}\ntest_nodes:\n  x: [group:g]\n", `policy.yaml:3: test_nodes.x[0]: test nodes list tags (tag:NAME), not "group:g"`},
		{"tag twice", "tags: [a, tag:a]\n", `policy.yaml:1: tags[1]: tag "a" declared twice`},
		{"empty from", "rules:\n  - {from: [], to: b, proto: tcp}\n", `policy.yaml:2: rules[0].from: must name at least one node, tag or group`},
		{"rule name chars", "rules:\n  - {name: a b, from: a, to: b, proto: tcp}\n", `policy.yaml:2: rules[0].name: rule name "a b": only letters, digits, '-', '_' and '.' are allowed`},
		{"several errors in line order", "rules:\n  - {from: a, to: b, proto: tcp, ports: [x]}\n  - {from: a, to: b, proto: foo}\n",
			"policy.yaml:2: rules[0].ports[0]: invalid port \"x\"\npolicy.yaml:3: rules[1].proto: unknown protocol \"foo\" (want tcp, udp, icmp or any)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := Parse("policy.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error %q", tt.in, pol, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse(%q) error =\n%s\nwant\n%s", tt.in, got, tt.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Errorf("Parse error %T is not Errors", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	in := `
tags: [Web, tag:db]
groups:
  servers: [group:dbs, tag:web, n1]
  dbs: [tag:db]
rules:
  - name: r
    from: group:servers
    to: "*"
    proto: [udp, tcp, udp2]
`
	if _, err := Parse("p", []byte(in)); err == nil || !strings.Contains(err.Error(), `unknown protocol "udp2"`) {
		t.Fatalf("Parse = %v, want unknown protocol", err)
	}
	in = strings.Replace(in, ", udp2", "", 1) + "    ports: [443, 80, 81-90, 85, 8000-8001, 7999]\n"
	pol, err := Parse("p", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"web", "db"}; !slices.Equal(pol.Tags, want) {
		t.Errorf("Tags = %v, want %v", pol.Tags, want)
	}
	r := pol.Rules[0]
	if want := []string{"tcp", "udp"}; !slices.Equal(r.Protocols, want) {
		t.Errorf("Protocols = %v, want %v", r.Protocols, want)
	}
	wantPorts := []api.PortRange{{First: 80, Last: 90}, {First: 443, Last: 443}, {First: 7999, Last: 8001}}
	if !slices.Equal(r.Ports, wantPorts) {
		t.Errorf("Ports = %v, want %v", r.Ports, wantPorts)
	}
	g, _ := pol.Group("servers")
	for _, c := range []struct {
		name string
		tags []string
		want bool
	}{
		{"n1", nil, true},
		{"n2", nil, false},
		{"n2", []string{"db"}, true},
		{"n2", []string{"tag:web"}, true},
		{"n2", []string{"other"}, false},
	} {
		if got := g.set.contains(c.name, c.tags); got != c.want {
			t.Errorf("servers contains %s %v = %v, want %v", c.name, c.tags, got, c.want)
		}
	}
}

func TestProtoAnyAbsorbs(t *testing.T) {
	pol, err := Parse("", []byte("rules:\n  - {from: a, to: b, proto: [tcp, any]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := pol.Rules[0].Protocols; !slices.Equal(got, []string{"any"}) {
		t.Errorf("Protocols = %v, want [any]", got)
	}
}

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in      string
		want    api.PortRange
		wantErr string
	}{
		{"22", api.PortRange{First: 22, Last: 22}, ""},
		{"1-65535", api.PortRange{First: 1, Last: 65535}, ""},
		{"80-80", api.PortRange{First: 80, Last: 80}, ""},
		{"90-80", api.PortRange{}, `invalid port range "90-80"`},
		{"0", api.PortRange{}, `invalid port "0"`},
		{"022", api.PortRange{}, `invalid port "022"`},
		{"-5", api.PortRange{}, `invalid port range "-5"`},
		{"5-", api.PortRange{}, `invalid port range "5-"`},
		{"1-2-3", api.PortRange{}, `invalid port range "1-2-3"`},
		{"http", api.PortRange{}, `invalid port "http"`},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParsePortRange(%q) = %v, %v, want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
	}{
		{"db1:5432", Target{Spec: "db1:5432", Node: "db1", Protocol: "tcp", Port: 5432}},
		{"DB1:53/UDP", Target{Spec: "DB1:53/UDP", Node: "db1", Protocol: "udp", Port: 53}},
		{"db1/icmp", Target{Spec: "db1/icmp", Node: "db1", Protocol: "icmp"}},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestShippedPolicies(t *testing.T) {
	for _, file := range []string{"example.yaml", "default.yaml"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			pol, err := Parse(file, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(pol.Tests) == 0 {
				t.Fatal("no tests")
			}
			if err := pol.Check(nil); err != nil {
				t.Fatalf("Check: %v", err)
			}
			for _, r := range pol.RunTests(nil) {
				t.Log(r)
			}
		})
	}
	if string(DefaultYAML) == "" {
		t.Fatal("DefaultYAML is empty")
	}
}
