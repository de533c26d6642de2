package cli

import (
	"flag"
	"io"
	"slices"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestAdvertisedServices(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []api.Service
	}{
		{nil, nil},
		{[]string{"--advertise-dns"}, []api.Service{{Name: api.ServiceDNS, Protocol: "udp", Port: 53}}},
		{[]string{"--advertise-nfs"}, []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049},
			{Name: "metrics-nfsd", Protocol: "tcp", Port: 9108}}},
		{[]string{"--advertise-nfs", "--advertise-dns"}, []api.Service{
			{Name: api.ServiceDNS, Protocol: "udp", Port: 53}, {Name: api.ServiceNFS, Protocol: "tcp", Port: 2049},
			{Name: "metrics-nfsd", Protocol: "tcp", Port: 9108}}},
		{[]string{"--advertise-storage"}, []api.Service{{Name: "storage", Protocol: "tcp", Port: 9000},
			{Name: "storage-auth", Protocol: "tcp", Port: 9001}, {Name: "metrics-storage", Protocol: "tcp", Port: 9104}}},
	} {
		var f runFlags
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if _, got := f.dnsSettings(); !slices.Equal(got, tc.want) {
			t.Errorf("services for %q = %v, want %v", tc.args, got, tc.want)
		}
	}
}
