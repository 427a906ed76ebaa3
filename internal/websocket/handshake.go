package websocket

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
)

// acceptGUID is the string RFC 6455 4.2.2 (and 1.3) appends to the key
// before hashing: "258EAFA5-E914-47DA-95CA-C5AB0DC85B11".
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Version is the only Sec-WebSocket-Version of RFC 6455 (4.1, 4.2.1).
const Version = "13"

// NewKey returns a fresh Sec-WebSocket-Key: "a randomly selected 16-byte
// value that has been base64-encoded" (RFC 6455 4.1), "chosen randomly for
// each connection".
func NewKey() string {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails (Go 1.24)
	return base64.StdEncoding.EncodeToString(nonce[:])
}

// ValidKey reports whether key is a Sec-WebSocket-Key as RFC 6455 4.2.1
// wants it: "a base64-encoded value that, when decoded, is 16 bytes in
// length".
func ValidKey(key string) bool {
	if len(key) != base64.StdEncoding.EncodedLen(16) {
		return false
	}
	var nonce [18]byte // decoding needs a whole 3-octet group's room
	n, err := base64.StdEncoding.Decode(nonce[:], []byte(key))
	return err == nil && n == 16
}

// AcceptKey returns the Sec-WebSocket-Accept value for key (RFC 6455
// 4.2.2): the base64 of the SHA-1 of the key followed by the GUID. SHA-1
// is the RFC's choice; it only proves that the server read this handshake,
// not anything a collision could forge.
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}
