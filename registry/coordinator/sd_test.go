package coordinator

import "testing"

func TestRegistryTarget(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"https://coordinator:8443", "coordinator:8443"},
		{"https://reg.example.org", "reg.example.org:443"},
		{"https://[2001:db8::1]:8443/", "[2001:db8::1]:8443"},
	} {
		if got := registryTarget(tt.in); got != tt.want {
			t.Errorf("registryTarget(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
