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

func TestArgsCluster(t *testing.T) {
	o := Options{Binary: "weed", Dir: "/d", S3Addr: netip.MustParseAddrPort("100.64.0.5:9000"), IdentitiesFile: "/d/id.json",
		IP: netip.MustParseAddr("100.64.0.5"), MasterPeers: "100.64.0.5:9333,100.64.0.6:9333,100.64.0.7:9333", Replication: "001"}
	got := strings.Join(o.Args(), " ")
	for _, want := range []string{
		"-ip=100.64.0.5", "-ip.bind=100.64.0.5", "-s3.ip.bind=100.64.0.5",
		"-master.peers=100.64.0.5:9333,100.64.0.6:9333,100.64.0.7:9333", "-master.defaultReplication=001",
	} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("Args() = %s\nlacks %s", got, want)
		}
	}
	if strings.Contains(got, "127.0.0.1") || strings.Contains(got, "0.0.0.0") {
		t.Errorf("cluster Args() bind loopback or a wildcard: %s", got)
	}
	single := strings.Join(Options{Binary: "weed", Dir: "/d", S3Addr: netip.MustParseAddrPort("100.64.0.5:9000"), IdentitiesFile: "x"}.Args(), " ")
	if strings.Contains(single, "-master.peers") || strings.Contains(single, "defaultReplication") {
		t.Errorf("single-node Args() = %s, want no peers or replication", single)
	}
	o.IP = netip.MustParseAddr("0.0.0.0")
	if o.Validate() == nil {
		t.Errorf("Validate(IP 0.0.0.0) = nil, want an error")
	}
}
