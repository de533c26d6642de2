package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// --udp-receive-buffer takes 0 (the default) or a size within its bounds,
// and refuses anything else with an error naming the flag.
func TestUDPReceiveBufferFlag(t *testing.T) {
	for _, tt := range []struct {
		arg string
		ok  bool
	}{
		{"", true},
		{"0", true},
		{"65536", true},
		{"786432", true},
		{"67108864", true},
		{"65535", false},
		{"67108865", false},
		{"-1", false},
	} {
		var f runFlags
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		var args []string
		if tt.arg != "" {
			args = []string{"--udp-receive-buffer", tt.arg}
		}
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		err := f.check()
		if tt.ok && err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !tt.ok && (err == nil || !strings.Contains(err.Error(), "--udp-receive-buffer")) {
			t.Errorf("%v: %v, want an error naming the flag", args, err)
		}
	}
}
