package wire

import "time"

// Version is the tunnel protocol version, carried in byte 1 of every message
// and in the Noise prologue.
const Version = 2

// Message types (byte 0).
const (
	TypeInitiation  = 1
	TypeResponse    = 2
	TypeCookieReply = 3
	TypeTransport   = 4
)

// Message sizes.
const (
	MACSize               = 16
	KeySize               = 32
	TimestampSize         = 12 // TAI64N
	InitiationNoiseSize   = 32 + 48 + TimestampSize + 16
	ResponseNoiseSize     = 32 + 16
	InitiationSize        = 8 + InitiationNoiseSize + 2*MACSize // 148
	ResponseSize          = 12 + ResponseNoiseSize + 2*MACSize  // 92
	CookieNonceSize       = 24
	CookieSize            = 16
	CookieReplySize       = 8 + CookieNonceSize + CookieSize + 16 // 64
	TransportHeaderSize   = 16
	TransportTagSize      = 16
	TransportMinSize      = TransportHeaderSize + TransportTagSize // 32, a keepalive
	TransportPaddingMulti = 16
	// MaxMessageSize bounds every datagram the protocol sends or accepts.
	MaxMessageSize = 65535
	// MaxContentSize is the largest plaintext a transport message can carry.
	MaxContentSize = MaxMessageSize - TransportMinSize
)

// Protocol limits and timers, under WireGuard's names (whitepaper section 6).
const (
	RekeyAfterMessages      = uint64(1) << 60
	RejectAfterMessages     = ^uint64(0) - (uint64(1) << 13)
	RekeyAfterTime          = 120 * time.Second
	RekeyAttemptTime        = 90 * time.Second
	RekeyTimeout            = 5 * time.Second
	RekeyTimeoutJitterMax   = 334 * time.Millisecond
	RejectAfterTime         = 180 * time.Second
	KeepaliveTimeout        = 10 * time.Second
	CookieRefreshTime       = 120 * time.Second
	HandshakeInitiationRate = time.Second / 50
	// PersistentKeepaliveDefault is how often an otherwise idle session sends
	// a keepalive so NAT mappings stay open (WireGuard's usual setting).
	PersistentKeepaliveDefault = 25 * time.Second
)
