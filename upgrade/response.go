package upgrade

import (
	"encoding/json"
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
}

// Error returns "the server answered" with the status and, if any, the
// server's message.
func (e *ResponseError) Error() string {
	status := e.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Message == "" {
		return "the server answered " + status
	}
	return "the server answered " + status + ": " + e.Message
}

// maxMessageBytes bounds how much of a refusal's body is read: enough for
// any Kubernetes Status or error page worth showing, and a server cannot
// make the client buffer more.
const maxMessageBytes = 16 << 10

// checkUpgradeResponse returns nil if resp switched to this package's
// protocol, and otherwise an *httpstream.UpgradeFailureError saying why not.
func checkUpgradeResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return &httpstream.UpgradeFailureError{Cause: &ResponseError{
			StatusCode: resp.StatusCode,
			Status:     safetext.Sanitize(resp.Status, maxStatusBytes),
			Message:    serverMessage(resp.Body),
		}}
	}
	if !headerHasToken(resp.Header, httpstream.HeaderConnection, "upgrade") {
		return &httpstream.UpgradeFailureError{Cause: fmt.Errorf(
			"the server answered 101 Switching Protocols without the upgrade token in its Connection header (it has [%s]): it is not a valid upgrade",
			headerText(resp.Header, httpstream.HeaderConnection))}
	}
	if !headerHasToken(resp.Header, httpstream.HeaderUpgrade, Protocol) {
		return &httpstream.UpgradeFailureError{Cause: fmt.Errorf(
			"the server switched to [%s] instead of %s: it speaks another protocol or version; use a client and server of matching versions",
			headerText(resp.Header, httpstream.HeaderUpgrade), Protocol)}
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
