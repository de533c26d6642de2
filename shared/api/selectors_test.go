package api

import (
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
