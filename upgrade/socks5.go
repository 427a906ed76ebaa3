package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
)

// The client side of SOCKS version 5 (RFC 1928), CONNECT command only, with
// the username/password method of RFC 1929. It is written here because the
// module depends on the standard library alone.

// Protocol constants, named as in the RFCs.
const (
	socksVersion = 0x05 // RFC 1928, 3: VER

	socksMethodNone         = 0x00 // NO AUTHENTICATION REQUIRED
	socksMethodPassword     = 0x02 // USERNAME/PASSWORD (RFC 1929)
	socksMethodNoAcceptable = 0xff // NO ACCEPTABLE METHODS

	socksCommandConnect = 0x01 // RFC 1928, 4: CMD CONNECT

	socksAddressIPv4   = 0x01 // RFC 1928, 5: ATYP
	socksAddressDomain = 0x03
	socksAddressIPv6   = 0x04

	socksReplySucceeded = 0x00 // RFC 1928, 6: REP

	socksPasswordVersion = 0x01 // RFC 1929, 2: VER of the subnegotiation
	socksPasswordSuccess = 0x00 // RFC 1929, 2: STATUS
)

// socksReplies names the failure codes of RFC 1928, section 6, so errors
// say what went wrong rather than print a number.
var socksReplies = [...]string{
	0x01: "general SOCKS server failure",
	0x02: "connection not allowed by ruleset",
	0x03: "network unreachable",
	0x04: "host unreachable",
	0x05: "connection refused",
	0x06: "TTL expired",
	0x07: "command not supported",
	0x08: "address type not supported",
}

// socksReplyText returns the words for a REP code.
func socksReplyText(code byte) string {
	if int(code) < len(socksReplies) && socksReplies[code] != "" {
		return socksReplies[code]
	}
	return "unassigned failure code " + strconv.Itoa(int(code))
}

// socks5Connect asks the SOCKS5 proxy at the other end of conn to connect
// it to target ("host:port"), authenticating with user if given.
func socks5Connect(ctx context.Context, conn net.Conn, user *url.Userinfo, target string) error {
	// Everything that can be checked without the proxy is checked first,
	// so a bad URL is reported as such rather than as a handshake failure.
	request, err := socksConnectRequest(target)
	if err != nil {
		return err
	}
	auth, err := socksPasswordRequest(user)
	if err != nil {
		return err
	}
	return withContext(ctx, conn, "SOCKS5 handshake", func() error {
		return socksHandshake(conn, auth, request)
	})
}

// socksHandshake negotiates the method, authenticates if the proxy wants
// it, and sends the CONNECT request. auth is the RFC 1929 request, nil when
// the URL carries no credentials.
func socksHandshake(rw io.ReadWriter, auth, request []byte) error {
	// RFC 1928, 3: VER, NMETHODS, METHODS. Without credentials only "none"
	// is offered, so a proxy that insists on a password says so (0xFF)
	// instead of being sent an empty one.
	greeting := []byte{socksVersion, 1, socksMethodNone}
	if auth != nil {
		greeting = []byte{socksVersion, 2, socksMethodNone, socksMethodPassword}
	}
	if _, err := rw.Write(greeting); err != nil {
		return err
	}
	var choice [2]byte // VER, METHOD
	if _, err := io.ReadFull(rw, choice[:]); err != nil {
		return fmt.Errorf("reading the method selection: %w", err)
	}
	if choice[0] != socksVersion {
		return fmt.Errorf("the proxy answered with version %d: it does not speak SOCKS5", choice[0])
	}
	switch method := choice[1]; {
	case method == socksMethodNone:
	case method == socksMethodPassword && auth != nil:
		if err := socksAuthenticate(rw, auth); err != nil {
			return err
		}
	case method == socksMethodNoAcceptable && auth == nil:
		return &ProxyError{Reason: "the SOCKS5 proxy requires authentication: put the username and password in the proxy URL (socks5://user:password@host:port)"}
	case method == socksMethodNoAcceptable:
		return &ProxyError{Reason: "the SOCKS5 proxy accepts neither no authentication nor username/password"}
	default:
		return fmt.Errorf("the SOCKS5 proxy chose authentication method %#02x, which was not offered", method)
	}

	if _, err := rw.Write(request); err != nil {
		return err
	}
	return socksReadReply(rw)
}

// socksAuthenticate runs the RFC 1929 subnegotiation.
func socksAuthenticate(rw io.ReadWriter, auth []byte) error {
	if _, err := rw.Write(auth); err != nil {
		return err
	}
	var reply [2]byte // VER, STATUS
	if _, err := io.ReadFull(rw, reply[:]); err != nil {
		return fmt.Errorf("reading the authentication reply: %w", err)
	}
	// VER is not checked: some proxies echo the SOCKS version (5) rather
	// than the subnegotiation's (1), and STATUS is unambiguous either way.
	if reply[1] != socksPasswordSuccess {
		return &ProxyError{Reason: "the SOCKS5 proxy rejected the username and password"}
	}
	return nil
}

// socksReadReply reads the reply to CONNECT (RFC 1928, 6) and skips the
// bound address it carries, leaving the stream at the tunnel's first octet.
func socksReadReply(r io.Reader) error {
	var head [4]byte // VER, REP, RSV, ATYP
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return fmt.Errorf("reading the CONNECT reply: %w", err)
	}
	if head[0] != socksVersion {
		return fmt.Errorf("the proxy replied to CONNECT with version %d: it does not speak SOCKS5", head[0])
	}
	if head[1] != socksReplySucceeded {
		return &ProxyError{Reason: fmt.Sprintf("%s (SOCKS5 reply %#02x)", socksReplyText(head[1]), head[1])}
	}
	var addressLength int
	switch head[3] {
	case socksAddressIPv4:
		addressLength = net.IPv4len
	case socksAddressIPv6:
		addressLength = net.IPv6len
	case socksAddressDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return fmt.Errorf("reading the CONNECT reply: %w", err)
		}
		addressLength = int(n[0])
	default:
		return fmt.Errorf("the SOCKS5 proxy replied with unknown address type %#02x", head[3])
	}
	// BND.ADDR and BND.PORT: at most 255+2 octets, so a small buffer holds
	// them whatever the proxy claims.
	bound := make([]byte, addressLength+2)
	if _, err := io.ReadFull(r, bound); err != nil {
		return fmt.Errorf("reading the CONNECT reply: %w", err)
	}
	return nil
}

// socksConnectRequest encodes the CONNECT request for target (RFC 1928, 4
// and 5): an IP address as such, anything else as a domain name for the
// proxy to resolve.
func socksConnectRequest(target string) ([]byte, error) {
	host, portText, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("SOCKS5 target %q: %w", target, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("SOCKS5 target %q: the port must be a number from 0 to 65535", target)
	}
	req := []byte{socksVersion, socksCommandConnect, 0x00}
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		if addr.Is4() {
			req = append(req, socksAddressIPv4)
		} else {
			req = append(req, socksAddressIPv6)
		}
		req = append(req, addr.AsSlice()...)
	} else {
		if len(host) == 0 || len(host) > 255 {
			return nil, fmt.Errorf("SOCKS5 target %q: a host name must be 1 to 255 octets long", target)
		}
		req = append(req, socksAddressDomain, byte(len(host)))
		req = append(req, host...)
	}
	return append(req, byte(port>>8), byte(port)), nil
}

// socksPasswordRequest encodes the RFC 1929 request for user, or returns nil
// without credentials.
func socksPasswordRequest(user *url.Userinfo) ([]byte, error) {
	if user == nil {
		return nil, nil
	}
	// Username and Password return the decoded text, so percent-escapes in
	// the proxy URL reach the proxy as the characters they stand for.
	name := user.Username()
	password, _ := user.Password()
	// RFC 1929 gives both fields a one-octet length. It also asks for at
	// least one octet of password, but proxies accept an empty one, as
	// other clients send it.
	if len(name) == 0 || len(name) > 255 {
		return nil, errors.New("the SOCKS5 username in the proxy URL must be 1 to 255 octets long")
	}
	if len(password) > 255 {
		return nil, errors.New("the SOCKS5 password in the proxy URL must be at most 255 octets long")
	}
	req := []byte{socksPasswordVersion, byte(len(name))}
	req = append(req, name...)
	req = append(req, byte(len(password)))
	return append(req, password...), nil
}
