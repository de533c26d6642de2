// Package wire holds the TunnelMesh tunnel protocol's message formats and
// protocol constants. It is pure: no I/O, no clocks, no keys. The
// cryptography lives in package handshake (Noise IKpsk2) and package cookie
// (MAC1/MAC2 and cookie replies); the replay window is wireguard-go's
// (golang.zx2c4.com/wireguard/replay).
//
// The design is WireGuard's, with a Noise IKpsk2_25519_ChaChaPoly_BLAKE2s
// handshake (package handshake, checked byte for byte against
// github.com/flynn/noise). Every message is one UDP datagram.
// All integers are little-endian. Byte 0 is the message type, byte 1 the
// protocol version (Version, currently 2), bytes 2 and 3 are zero; a parser
// rejects any other value, so a future version fails loudly instead of being
// misread.
//
// # Handshake initiation (type 1, 148 bytes), initiator to responder
//
//	offset size field
//	0      1    type = 1
//	1      1    version = 2
//	2      2    reserved, zero
//	4      4    sender index: the initiator's local index for this handshake
//	8      32   Noise "e": the initiator's ephemeral X25519 public key, clear
//	40     48   Noise "s": the initiator's static X25519 public key,
//	            ChaCha20-Poly1305 encrypted (32 + 16 tag)
//	88     28   Noise payload: TAI64N timestamp (12 bytes) encrypted (12 + 16 tag)
//	116    16   mac1 = BLAKE2s-128(key = BLAKE2s-256("mac1----" || responder
//	            static public key), bytes 0..115)
//	132    16   mac2 = BLAKE2s-128(key = cookie, bytes 0..131), or zeros when
//	            the initiator holds no fresh cookie
//
// Bytes 8..115 are the first Noise message "-> e, es, s, ss" with the
// timestamp as its payload. The Noise prologue is Prologue(meshID), which
// binds the protocol version and the mesh ID into the handshake hash; the
// static keys are the X25519 forms of the nodes' ed25519 keys.
//
// # Handshake response (type 2, 92 bytes), responder to initiator
//
//	offset size field
//	0      1    type = 2
//	1      1    version = 2
//	2      2    reserved, zero
//	4      4    sender index: the responder's local index for the session
//	8      4    receiver index: the initiation's sender index
//	12     32   Noise "e": the responder's ephemeral public key, clear
//	44     16   Noise empty payload, encrypted: the Poly1305 tag only
//	60     16   mac1 = BLAKE2s-128(key = BLAKE2s-256("mac1----" || initiator
//	            static public key), bytes 0..59)
//	76     16   mac2 = BLAKE2s-128(key = cookie, bytes 0..75), or zeros
//
// Bytes 12..59 are the second Noise message "<- e, ee, se, psk". The mesh
// pre-shared key is mixed in here (psk2). The Noise prologue is Prologue
// followed by a keyed BLAKE2s tag of the PSK (package handshake), so a node
// with a valid key but the wrong PSK already fails at the responder, which
// cannot decrypt the initiator's static key; during a PSK rotation the
// responder tells by the same means which of two PSKs the initiator holds.
//
// # Cookie reply (type 3, 64 bytes), sent instead of a response under load
//
//	offset size field
//	0      1    type = 3
//	1      1    version = 2
//	2      2    reserved, zero
//	4      4    receiver index: the sender index of the message it answers
//	8      24   nonce, random
//	32     32   cookie (16) encrypted with XChaCha20-Poly1305, key =
//	            BLAKE2s-256("cookie--" || replier's static public key),
//	            additional data = mac1 of the message it answers
//
// The cookie is BLAKE2s-128(key = a random secret rotated every
// CookieRefreshTime, the source IP and port of the message it answers).
//
// # Transport data (type 4, 32 bytes or more)
//
//	offset size field
//	0      1    type = 4
//	1      1    version = 2
//	2      2    reserved, zero
//	4      4    receiver index: the receiver's local index of the session
//	8      8    counter: the sender's 64-bit message counter, also the AEAD nonce
//	16     n+16 ChaCha20-Poly1305(session key, nonce = 4 zero bytes || counter,
//	            additional data = none, plaintext = IP packet padded with zeros
//	            to a multiple of 16 bytes)
//
// A keepalive is a transport message with an empty plaintext (32 bytes on the
// wire); every control signal travels inside the AEAD. The receiver checks the
// tag before it touches the replay window or the peer's endpoint.
package wire
