package weed

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
)

// Options describe one `weed server`.
type Options struct {
	Binary string // weed executable
	Dir    string // data directory (created)
	// S3Addr is where the S3 gateway listens; its gRPC port is
	// S3Addr.Port()+10000 on the same address.
	S3Addr netip.AddrPort
	// IdentitiesFile is the -s3.config JSON (reread on SIGHUP).
	IdentitiesFile string
	// Loopback ports of the master, volume server and filer (their gRPC
	// ports are these +10000). Zero means SeaweedFS's defaults 9333, 8080,
	// 8888.
	MasterPort, VolumePort, FilerPort uint16
	VolumeMax                         int
	VolumeSizeMB                      int
	// MetricsAddr serves SeaweedFS's Prometheus metrics; invalid (zero)
	// disables them.
	MetricsAddr netip.AddrPort
	// IP is the address the master, volume server and filer listen on and
	// advertise, and the source of their outgoing connections; invalid
	// (zero) means 127.0.0.1 (a single node). A cluster node sets its mesh
	// address: the other nodes reach it there.
	IP netip.Addr
	// MasterPeers is -master.peers (every master of the cluster as
	// IP:port, this one included); empty for a single node.
	MasterPeers string
	// Replication is -master.defaultReplication ("001"); empty leaves
	// SeaweedFS's default (no copy).
	Replication string
}

func orDefault(p, d uint16) int {
	if p == 0 {
		return int(d)
	}
	return int(p)
}

// Args returns the command line of `weed server` for o (without the
// binary).
func (o Options) Args() []string {
	itoa := strconv.Itoa
	s3ip := o.S3Addr.Addr().String()
	ip := "127.0.0.1"
	if o.IP.IsValid() {
		ip = o.IP.String()
	}
	args := []string{
		"server",
		"-ip=" + ip,
		"-ip.bind=" + ip,
		"-dir=" + filepath.Join(o.Dir, "data"),
		"-master.dir=" + filepath.Join(o.Dir, "master"),
		"-master.port=" + itoa(orDefault(o.MasterPort, 9333)),
		"-master.volumeSizeLimitMB=" + itoa(o.VolumeSizeMB),
		"-master.telemetry=false",
		"-volume.port=" + itoa(orDefault(o.VolumePort, 8080)),
		"-volume.max=" + itoa(o.VolumeMax),
		"-filer",
		"-filer.port=" + itoa(orDefault(o.FilerPort, 8888)),
		"-filer.localSocket=" + filepath.Join(o.Dir, "filer.sock"),
		"-s3",
		"-s3.ip.bind=" + s3ip,
		"-s3.port=" + itoa(int(o.S3Addr.Port())),
		"-s3.port.iceberg=0",
		"-s3.port.lance=0",
		"-s3.iam=false",
		"-s3.localSocket=" + filepath.Join(o.Dir, "s3.sock"),
		"-s3.config=" + o.IdentitiesFile,
	}
	if o.MasterPeers != "" {
		args = append(args, "-master.peers="+o.MasterPeers)
	}
	if o.Replication != "" {
		args = append(args, "-master.defaultReplication="+o.Replication)
	}
	if o.MetricsAddr.IsValid() {
		args = append(args,
			"-metricsIp="+o.MetricsAddr.Addr().String(),
			"-metricsPort="+itoa(int(o.MetricsAddr.Port())))
	}
	return args
}

// Validate checks that o can be run.
func (o Options) Validate() error {
	switch {
	case o.Binary == "":
		return fmt.Errorf("weed options: no binary")
	case o.Dir == "":
		return fmt.Errorf("weed options: no data directory")
	case !o.S3Addr.IsValid() || o.S3Addr.Addr().IsUnspecified() || o.S3Addr.Port() == 0:
		return fmt.Errorf("weed options: S3 address %s: want a specific IP and port", o.S3Addr)
	case o.IdentitiesFile == "":
		return fmt.Errorf("weed options: no identities file")
	case o.IP.IsValid() && o.IP.IsUnspecified():
		return fmt.Errorf("weed options: IP %s: want a specific address", o.IP)
	case o.VolumeMax < 0:
		return fmt.Errorf("weed options: negative volume max")
	}
	return nil
}
