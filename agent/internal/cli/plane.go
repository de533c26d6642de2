package cli

import (
	"errors"
	"log/slog"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/node"
)

func newDataPlane(dev tun.Device, cfg node.PlaneConfig, log *slog.Logger) (node.DataPlane, error) {
	return nil, errors.New("data plane not built yet")
}
