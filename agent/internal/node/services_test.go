package node

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestSetServices(t *testing.T) {
	dns := api.Service{Name: api.ServiceDNS, Protocol: "udp", Port: 53}
	n := &Node{cfg: Config{Services: []api.Service{dns}}, log: slog.New(slog.DiscardHandler)}
	web := api.Service{Name: "web", Protocol: "tcp", Port: 8080, Allow: "tag:web,group:devs"}
	site := api.Service{Name: "site", Protocol: "tcp", Port: 80}
	if err := n.SetServices("dockerwatch", []api.Service{web, site}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.ext.changedC():
	default:
		t.Error("SetServices did not signal a report")
	}
	// The owner is set by the node, whatever the caller sent.
	web.Owner, site.Owner = "dockerwatch", "dockerwatch"
	if got, want := n.services(), []api.Service{dns, site, web}; !slices.Equal(got, want) {
		t.Errorf("services() = %v, want %v", got, want)
	}
	// The same set again: no report due.
	if err := n.SetServices("dockerwatch", []api.Service{web, {Name: "site", Protocol: "tcp", Port: 80, Owner: "forged"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.ext.changedC():
		t.Error("setting the same services signalled a report")
	default:
	}

	for _, tc := range []struct {
		name, owner string
		svcs        []api.Service
		want        string
	}{
		{"bad owner", "Docker Watch", []api.Service{web}, "owner:"},
		{"clash with the node's own", "other", []api.Service{{Name: "dns", Protocol: "udp", Port: 53}}, "other[0]: dns 53/udp is already published"},
		{"clash with another owner", "other", []api.Service{{Name: "web", Protocol: "tcp", Port: 8080}}, "other[0]: web 8080/tcp is already published"},
		{"bad allow", "other", []api.Service{{Name: "x", Protocol: "tcp", Port: 9, Allow: "role:x"}}, "other[0].allow"},
		{"bad protocol", "other", []api.Service{{Name: "x", Protocol: "sctp", Port: 9}}, `other[0].protocol "sctp": must be tcp or udp`},
		{"no port", "other", []api.Service{{Name: "x", Protocol: "tcp"}}, "other[0].port"},
		{"bad name", "other", []api.Service{{Name: "a.b", Protocol: "tcp", Port: 1}}, "other[0].name"},
		{"too many", "other", many(api.MaxServices), "services, at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n.SetServices(tc.owner, tc.svcs)
			if !errors.Is(err, localapi.ErrBadServices) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SetServices(%s) = %v, want ErrBadServices with %q", tc.name, err, tc.want)
			}
			if got, want := n.services(), []api.Service{dns, site, web}; !slices.Equal(got, want) {
				t.Errorf("after a refused set, services() = %v, want %v", got, want)
			}
		})
	}

	// An empty set withdraws the owner's services.
	if err := n.SetServices("dockerwatch", nil); err != nil {
		t.Fatal(err)
	}
	if got := n.services(); !slices.Equal(got, []api.Service{dns}) {
		t.Errorf("after withdrawal, services() = %v, want only %v", got, dns)
	}
}

func many(k int) []api.Service {
	out := make([]api.Service, k)
	for i := range out {
		out[i] = api.Service{Name: "s" + strings.Repeat("x", i%5) + string(rune('a'+i%26)), Protocol: []string{"tcp", "udp"}[i/26], Port: uint16(i + 1)}
	}
	return out
}

// TestServicesExpire: an owner that stops re-sending its set (a killed
// dockerwatch) loses it ServicesTTL after the last set, and a report is
// due; each set, changed or not, renews it.
func TestServicesExpire(t *testing.T) {
	now := time.Unix(1000, 0)
	n := &Node{log: slog.New(slog.DiscardHandler)}
	n.ext.now = func() time.Time { return now }
	web := api.Service{Name: "web", Protocol: "tcp", Port: 8080}
	if err := n.SetServices("dockerwatch", []api.Service{web}); err != nil {
		t.Fatal(err)
	}
	<-n.ext.changedC()
	web.Owner = "dockerwatch"

	now = now.Add(ServicesTTL - time.Second)
	if err := n.SetServices("dockerwatch", []api.Service{web}); err != nil { // the same set: renews it
		t.Fatal(err)
	}
	now = now.Add(ServicesTTL - time.Second)
	n.expireServices()
	if got := n.services(); !slices.Equal(got, []api.Service{web}) {
		t.Fatalf("renewed %s ago: services() = %v, want %v", ServicesTTL-time.Second, got, web)
	}
	select {
	case <-n.ext.changedC():
		t.Fatal("nothing expired, yet a report is due")
	default:
	}

	now = now.Add(2 * time.Second)
	n.expireServices()
	if got := n.services(); len(got) != 0 {
		t.Errorf("not renewed for %s: services() = %v, want none", ServicesTTL+time.Second, got)
	}
	select {
	case <-n.ext.changedC():
	default:
		t.Error("the owner's set expired without a report due")
	}
}
