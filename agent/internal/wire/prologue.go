package wire

import "strconv"

// ProtocolName is the Noise protocol the handshake runs.
const ProtocolName = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"

// Prologue returns the Noise prologue for meshID: the ASCII string
// "tunnelmesh v<Version> mesh=<meshID>", to which package handshake appends
// a keyed BLAKE2s tag of the mesh PSK. Both sides must agree on it, so a
// node of another mesh, another protocol version or with another PSK fails
// the handshake at the responder.
func Prologue(meshID string) []byte {
	return []byte("tunnelmesh v" + strconv.Itoa(Version) + " mesh=" + meshID)
}
