package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/internal/safetext"
)

// ResponseError is the Cause of the *httpstream.UpgradeFailureError that
// NewConnection returns when the server answered with a status other than
// 101: the status, and what the server said about it.
//
// Status and Message are the server's text, made safe to print: control
// characters other than newline and tab, invalid UTF-8 and the characters
// that reorder text on screen are escaped (as \x1b, \xff or \u202e), so
// that a hostile server cannot drive the terminal of a tool that prints the
// error.
type ResponseError struct {
	// StatusCode is the server's HTTP status, such as 403.
	StatusCode int
	// Status is the status line's text, such as "403 Forbidden", cut at
	// 256 bytes.
	Status string
	// Message is the server's explanation: a JSON body's "message" field,
	// else its "error" field, else the body's text, whitespace trimmed and
	// cut after 16 KiB. It is empty if the body was.
	Message string
	// Tunnel is the handshake the server answered: TunnelDirect or
	// TunnelWebSocket (zero when not known).
	Tunnel Tunnel
	// Earlier is set when TunnelAuto made this direct upgrade after the
	// WebSocket handshake failed: how that one failed (often a
	// *ResponseError of its own).
	Earlier error

	hint string // what to try instead, when the status suggests a proxy in the way
}

// Error returns "the server answered" with the status and, if any, the
// server's message; then, when TunnelAuto tried both handshakes, how the
// first one failed, or else, when another Tunnel may get through, which.
func (e *ResponseError) Error() string {
	status := e.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	msg := "the server answered " + status
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Earlier != nil {
		var first *ResponseError
		if errors.As(e.Earlier, &first) && first.StatusCode == e.StatusCode && first.Message == e.Message {
			// The server said the same to both: once is enough.
			return msg + " (to the WebSocket handshake tried first, and to a direct upgrade)"
		}
		return msg + " (to a direct upgrade, after the WebSocket handshake tried first failed: " + e.Earlier.Error() + ")"
	}
	if e.hint != "" {
		msg += "; " + e.hint
	}
	return msg
}

// Hints for a refused upgrade, by the Tunnel refused: what got in the way
// may accept the other kind. A 401, or a 403 that lists the accepted
// stream protocols (httpstream.Handshake's), comes from the server itself
// and gets none.
const (
	directRefusedHint    = "if a proxy or load balancer between here and the server forwards only WebSocket upgrades, set RoundTripperConfig.Tunnel to upgrade.TunnelWebSocket (or upgrade.TunnelAuto)"
	webSocketRefusedHint = "if the server runs a version of httpstream from before the WebSocket tunnel, which accepts only the direct upgrade, set RoundTripperConfig.Tunnel to upgrade.TunnelAuto (or upgrade.TunnelDirect)"
)

// refusalHint returns the hint for resp, an answer other than a valid 101
// to att's handshake.
func refusalHint(resp *http.Response, att *attempt) string {
	if att.earlier != nil || resp.StatusCode == http.StatusUnauthorized ||
		resp.StatusCode == http.StatusForbidden && len(resp.Header.Values(httpstream.HeaderAcceptedProtocolVersions)) > 0 {
		return ""
	}
	switch att.tunnel {
	case TunnelDirect:
		return directRefusedHint
	case TunnelWebSocket:
		return webSocketRefusedHint
	}
	return ""
}

// maxMessageBytes bounds how much of a refusal's body is read: enough for
// any Kubernetes Status or error page worth showing, and a server cannot
// make the client buffer more.
const maxMessageBytes = 16 << 10

// checkUpgradeResponse returns nil if resp switched to this package's
// protocol in the way att asked for, and otherwise an
// *httpstream.UpgradeFailureError saying why not.
func checkUpgradeResponse(resp *http.Response, att *attempt) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return &httpstream.UpgradeFailureError{Cause: &ResponseError{
			StatusCode: resp.StatusCode,
			Status:     safetext.Sanitize(resp.Status, maxStatusBytes),
			Message:    serverMessage(resp.Body),
			Tunnel:     att.tunnel,
			Earlier:    att.earlier,
			hint:       refusalHint(resp, att),
		}}
	}
	var err error
	if att.tunnel == TunnelWebSocket {
		err = checkWebSocket101(resp, att.key)
	} else {
		err = checkDirect101(resp)
	}
	if err == nil {
		return nil
	}
	if hint := refusalHint(resp, att); hint != "" {
		err = fmt.Errorf("%w; %s", err, hint)
	}
	if att.earlier != nil {
		err = fmt.Errorf("%w (to a direct upgrade, after the WebSocket handshake tried first failed: %w)", err, att.earlier)
	}
	return &httpstream.UpgradeFailureError{Cause: err}
}

// checkDirect101 checks a 101 to a direct upgrade.
func checkDirect101(resp *http.Response) error {
	if !headerHasToken(resp.Header, httpstream.HeaderConnection, "upgrade") {
		return fmt.Errorf(
			"the server answered 101 Switching Protocols without the upgrade token in its Connection header (it has [%s]): it is not a valid upgrade",
			headerText(resp.Header, httpstream.HeaderConnection))
	}
	if !headerHasToken(resp.Header, httpstream.HeaderUpgrade, Protocol) {
		return fmt.Errorf(
			"the server switched to [%s] instead of %s: it speaks another protocol or version; use a client and server of matching versions",
			headerText(resp.Header, httpstream.HeaderUpgrade), Protocol)
	}
	return nil
}

// headerText returns the values of a header the server sent, for an error:
// joined, made safe to print and cut at maxStatusBytes.
func headerText(h http.Header, name string) string {
	return safetext.Sanitize(strings.Join(h.Values(name), ", "), maxStatusBytes)
}

// serverMessage reads the server's explanation from a refusal's body, up to
// maxMessageBytes, and makes it safe to print: the text a JSON body holds
// is checked after decoding, so "\u001b" in a JSON string is caught as
// well as a raw ESC.
func serverMessage(body io.Reader) string {
	if body == nil {
		return ""
	}
	data, err := io.ReadAll(io.LimitReader(body, maxMessageBytes+1))
	truncated := len(data) > maxMessageBytes
	if truncated {
		data = data[:maxMessageBytes]
	} else if msg := jsonMessage(data); msg != "" {
		return safetext.Sanitize(msg, maxMessageBytes)
	}
	msg := strings.TrimSpace(string(data))
	switch {
	case truncated:
		msg = safetext.Sanitize(msg, maxMessageBytes)
		if !strings.HasSuffix(msg, safetext.Truncated) { // Sanitize did not cut it again
			msg += safetext.Truncated
		}
		return msg
	case err != nil && msg == "":
		msg = "(the response body could not be read: " + err.Error() + ")"
	case err != nil:
		// A body cut short, by a timeout say: what came, and why no more.
		msg += " [the rest of the body could not be read: " + err.Error() + "]"
	}
	return safetext.Sanitize(msg, maxMessageBytes)
}

// jsonMessage returns the message a JSON error body carries: the "message"
// field of a Kubernetes Status (or similar), else an "error" field that is
// a string or an object with a "message". It returns "" for anything else.
func jsonMessage(data []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	if msg := jsonString(fields["message"]); msg != "" {
		return msg
	}
	raw := fields["error"]
	if msg := jsonString(raw); msg != "" {
		return msg
	}
	var nested map[string]json.RawMessage
	if json.Unmarshal(raw, &nested) == nil {
		return jsonString(nested["message"])
	}
	return ""
}

// jsonString decodes raw as a JSON string, trimmed; anything else is "".
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// headerHasToken reports whether any of h's name lines lists token,
// compared case-insensitively, in a comma-separated list (RFC 9110, 5.6.1).
func headerHasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for item := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.Trim(item, " \t"), token) {
				return true
			}
		}
	}
	return false
}
