package policystore

import (
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

const polDocker = `
tags: [web, admin]
docker:
  from: tag:admin
  to: tag:web
`

// TestDockerServicesRecompile: a docker service opens its port only while
// the node publishes it (while its container runs).
func TestDockerServicesRecompile(t *testing.T) {
	s, err := Open(t.TempDir(), []byte(polDocker), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := []api.Node{
		{Name: "web1", IP: netip.MustParseAddr("100.64.0.2"), Tags: []string{"web"}},
		{Name: "laptop", IP: netip.MustParseAddr("100.64.0.3"), Tags: []string{"admin"}},
	}
	s.SetNodes(ns)
	if f := s.Filter(&api.Node{Name: "web1"}); len(f.Rules) != 0 {
		t.Fatalf("Filter(web1) with no containers = %+v, want no rules", f)
	}
	ns[0].Services = []api.Service{{Name: "shop", Protocol: "tcp", Port: 8080, Owner: api.ServiceOwnerDocker}}
	s.SetNodes(ns)
	f := s.Filter(&api.Node{Name: "web1"})
	if len(f.Rules) != 1 || f.Rules[0].Name != "docker:shop" || f.Rules[0].Ports[0] != (api.PortRange{First: 8080, Last: 8080}) {
		t.Fatalf("Filter(web1) with shop running = %+v, want docker:shop on 8080", f)
	}
	ns[0].Services = nil
	s.SetNodes(ns)
	if f := s.Filter(&api.Node{Name: "web1"}); len(f.Rules) != 0 {
		t.Errorf("Filter(web1) after shop stopped = %+v, want no rules", f)
	}
}
