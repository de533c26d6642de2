package filter

import "golang.zx2c4.com/wireguard/tun"

// WrapTUN returns dev with every packet read from it (the packets the node
// sends into the mesh) shown to f.Outbound, so the data plane needs no
// outbound hook of its own: give the device the wrapped TUN and
// f.Inbound as its inbound filter. Reads are otherwise unchanged and
// nothing is allocated.
func WrapTUN(dev tun.Device, f *Filter) tun.Device { return &tunDevice{Device: dev, f: f} }

type tunDevice struct {
	tun.Device
	f *Filter
}

func (t *tunDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	for i := 0; i < n; i++ {
		t.f.Outbound(bufs[i][offset : offset+sizes[i]])
	}
	return n, err
}
