//go:build !linux

package device

import "net"

// setReceiveBuffer sets c's receive buffer to bytes, as far as the system
// lets it.
func setReceiveBuffer(c *net.UDPConn, bytes int) { _ = c.SetReadBuffer(bytes) }
