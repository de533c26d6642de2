package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// TestPrintStatusServices: the services the node publishes (its own and
// those set through the local API) are listed under the coordinator line.
func TestPrintStatusServices(t *testing.T) {
	s := localapi.Status{Name: "alpha", Coordinator: localapi.Coordinator{URL: "https://reg:8443", Reachable: true},
		Services: []api.Service{{Name: "dns", Protocol: "udp", Port: 53}, {Name: "web", Protocol: "tcp", Port: 8080}}}
	var b bytes.Buffer
	printStatus(&b, s, time.Now())
	want := "coordinator https://reg:8443  reachable\nservices    dns 53/udp, web 8080/tcp\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("printStatus =\n%s\nwant it to contain\n%s", b.String(), want)
	}
	s.Services = nil
	b.Reset()
	printStatus(&b, s, time.Now())
	if strings.Contains(b.String(), "services") {
		t.Errorf("printStatus with no services =\n%s\nwant no services line", b.String())
	}
}
