package link

import (
	"github.com/tunnelmesh/tunnelmesh/shared/bufpool"
	"github.com/tunnelmesh/tunnelmesh/sshgw/frame"
)

// Queued frames come from two pools by size, so a queue of small packets does
// not pin 64 KiB per entry.
var bufs = bufpool.New(frame.HeaderLen+2048, frame.HeaderLen+frame.MaxPacket)
