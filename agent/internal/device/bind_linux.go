package device

import (
	"net"

	"golang.org/x/sys/unix"
)

// setReceiveBuffer sets c's receive buffer to bytes: SO_RCVBUFFORCE with
// CAP_NET_ADMIN, else SO_RCVBUF up to net.core.rmem_max.
func setReceiveBuffer(c *net.UDPConn, bytes int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bytes) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, bytes)
		}
	})
}
