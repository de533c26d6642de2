package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestValidateServices(t *testing.T) {
	web := api.Service{Name: "web", Protocol: "tcp", Port: 8080, Owner: api.ServiceOwnerDocker, Allow: "tag:web,group:devs"}
	web2 := api.Service{Name: "web", Protocol: "tcp", Port: 8443, Owner: api.ServiceOwnerDocker}
	dns := api.Service{Name: "dns", Protocol: "udp", Port: 53}
	got, err := validateServices([]api.Service{web2, web, dns})
	if err != nil || !slices.Equal(got, []api.Service{dns, web, web2}) {
		t.Errorf("validateServices = %v, %v; want sorted %v", got, err, []api.Service{dns, web, web2})
	}
	for _, tc := range []struct {
		name string
		in   []api.Service
		want string
	}{
		{"same port twice", []api.Service{web, web}, "[1]: web 8080/tcp listed twice"},
		{"bad owner", []api.Service{{Name: "a", Protocol: "tcp", Port: 1, Owner: "Docker Watch"}}, "[0].owner:"},
		{"bad allow", []api.Service{{Name: "a", Protocol: "tcp", Port: 1, Allow: "role:admin"}}, "[0].allow:"},
		{"bad protocol", []api.Service{{Name: "a", Protocol: "sctp", Port: 1}}, "[0].protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := validateServices(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validateServices = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
