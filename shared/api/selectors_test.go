package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidateSelectors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tag:web,group:devs", ""},
		{"*", ""},
		{"alice,tag:a-b", ""},
		{"", "name is empty"},
		{"tag:web,", "name is empty"},
		{"role:x", `selector "role:x": want *`},
		{"tag:We", "selector"},
		{"tag:web tag:db", "selector"},
		{strings.Repeat("a,", 16) + "a", "17 selectors"},
	} {
		err := ValidateSelectors(tc.in)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidateSelectors(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestDockerServiceWire pins the JSON of a container's service: owner and
// allow are sent only when set, so a node's own services carry neither.
func TestDockerServiceWire(t *testing.T) {
	s := Service{Name: "web", Protocol: "tcp", Port: 8080, Owner: ServiceOwnerDocker, Allow: "group:devs,tag:web"}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"web","protocol":"tcp","port":8080,"owner":"dockerwatch","allow":"group:devs,tag:web"}`
	if string(got) != want {
		t.Errorf("Marshal(Service) = %s, want %s", got, want)
	}
	var back Service
	if err := json.Unmarshal(got, &back); err != nil || back != s {
		t.Errorf("Unmarshal = %+v, %v; want %+v", back, err, s)
	}
}
