package tunif

import (
	"net/netip"
	"strings"
	"testing"
)

func TestMTUFor(t *testing.T) {
	tests := []struct{ underlay, want int }{
		{1500, 1420},
		{9000, 8920},
		{1280, 1200},
		{600, MinMTU},
	}
	for _, tt := range tests {
		if got := MTUFor(tt.underlay); got != tt.want {
			t.Errorf("MTUFor(%d) = %d, want %d", tt.underlay, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Name: "tm0", MTU: 1420, Addr: netip.MustParseAddr("100.64.0.1"), Prefix: netip.MustParsePrefix("100.64.0.0/10")}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"default name", func(c *Config) { c.Name = "" }, ""},
		{"long name", func(c *Config) { c.Name = "a-very-long-interface-name" }, "longer than 15"},
		{"slash", func(c *Config) { c.Name = "tm/0" }, "invalid character"},
		{"mtu low", func(c *Config) { c.MTU = 100 }, "mtu 100"},
		{"mtu high", func(c *Config) { c.MTU = 70000 }, "mtu 70000"},
		{"v6 addr", func(c *Config) { c.Addr = netip.MustParseAddr("fd00::1") }, "must be IPv4"},
		{"outside", func(c *Config) { c.Addr = netip.MustParseAddr("10.0.0.1") }, "not in mesh prefix"},
		{"unmasked", func(c *Config) { c.Prefix = netip.MustParsePrefix("100.64.0.1/10") }, "masked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
