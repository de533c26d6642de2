package weed

import (
	"net/netip"
	"strings"
	"testing"
)

func TestArgsBindEveryListener(t *testing.T) {
	o := Options{Binary: "weed", Dir: "/d", S3Addr: netip.MustParseAddrPort("100.64.0.5:9000"), IdentitiesFile: "/d/id.json",
		VolumeMax: 64, VolumeSizeMB: 1024, MetricsAddr: netip.MustParseAddrPort("127.0.0.1:9327")}
	got := strings.Join(o.Args(), " ")
	for _, want := range []string{
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.ip.bind=100.64.0.5", "-s3.port=9000",
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false", "-master.telemetry=false",
		"-volume.max=64", "-s3.config=/d/id.json", "-metricsIp=127.0.0.1", "-metricsPort=9327",
		"-filer.localSocket=/d/filer.sock", "-s3.localSocket=/d/s3.sock",
	} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("Args() = %s\nlacks %s", got, want)
		}
	}
	if strings.Contains(got, "0.0.0.0") {
		t.Errorf("Args() binds a wildcard address: %s", got)
	}
	for _, bad := range []Options{
		{Binary: "weed", Dir: "/d", S3Addr: netip.MustParseAddrPort("0.0.0.0:9000"), IdentitiesFile: "x"},
		{Binary: "weed", Dir: "/d", IdentitiesFile: "x"},
		{Binary: "", Dir: "/d", S3Addr: netip.MustParseAddrPort("127.0.0.1:9000"), IdentitiesFile: "x"},
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}
