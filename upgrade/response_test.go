package upgrade

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/httpstream-go/httpstream"
)

func TestNewConnectionReportsTheServersMessage(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for _, tt := range []struct {
		name        string
		status      int
		contentType string
		body        string
		want        string
	}{
		{
			"a Kubernetes Status's message", http.StatusForbidden, "application/json",
			`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"web\" is forbidden: User \"bob\" cannot create pods/exec","reason":"Forbidden","code":403}`,
			`pods "web" is forbidden: User "bob" cannot create pods/exec`,
		},
		{"a JSON error field", http.StatusInternalServerError, "application/json", `{"error":"the container is not running"}`, "the container is not running"},
		{"a JSON error object's message", http.StatusTooManyRequests, "application/json", `{"error":{"code":429,"message":"slow down"}}`, "slow down"},
		{"message wins over error", http.StatusBadRequest, "application/json", `{"error":"generic","message":"specific"}`, "specific"},
		{"JSON without either field, as text", http.StatusBadRequest, "application/json", `{"status":"nope"}`, `{"status":"nope"}`},
		{"plain text, trimmed", http.StatusBadRequest, "text/plain", "  unable to upgrade: missing header\n", "unable to upgrade: missing header"},
		{"an empty body", http.StatusNotFound, "", "", ""},
		{"an oversized body, cut", http.StatusBadGateway, "text/html", huge, huge[:maxMessageBytes] + " [truncated]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}), false)
			rt := directRoundTripper(t, nil)
			conn, err := dialUpgrade(rt, srv.URL)
			if err == nil {
				_ = conn.Close()
				t.Fatal("the upgrade succeeded")
			}
			if !httpstream.IsUpgradeFailure(err) {
				t.Errorf("error %v is not an upgrade failure", err)
			}
			var refusal *ResponseError
			if !errors.As(err, &refusal) {
				t.Fatalf("error %v has no *ResponseError", err)
			}
			if refusal.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", refusal.StatusCode, tt.status)
			}
			if refusal.Message != tt.want {
				t.Errorf("Message = %.200q, want %.200q", refusal.Message, tt.want)
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want[:min(len(tt.want), 40)]) {
				t.Errorf("error text %.300q does not show the server's message", err)
			}
		})
	}
}

func TestNewConnectionRefusesA101ToSomethingElse(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header http.Header
	}{
		{"no Connection header", http.Header{"Upgrade": {Protocol}}},
		{"Connection without upgrade", http.Header{"Connection": {"keep-alive"}, "Upgrade": {Protocol}}},
		{"another protocol", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}},
		{"another version", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"httpstream/2"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := directRoundTripper(t, nil)
			body := &closeRecorder{}
			resp := &http.Response{StatusCode: http.StatusSwitchingProtocols, Status: "101 Switching Protocols", Header: tt.header, Body: body}
			_, err := rt.NewConnection(resp)
			if !httpstream.IsUpgradeFailure(err) {
				t.Errorf("error %v is not an upgrade failure", err)
			}
			if !body.closed {
				t.Error("NewConnection did not close the body")
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestNewConnectionAcceptsTheTokensInAnyCaseAndList(t *testing.T) {
	for _, header := range []http.Header{
		{"Connection": {"upgrade"}, "Upgrade": {"HTTPSTREAM/1"}},
		{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"h2c, httpstream/1"}},
	} {
		if err := checkUpgradeResponse(&http.Response{StatusCode: 101, Header: header}, &attempt{tunnel: TunnelDirect}); err != nil {
			t.Errorf("headers %v: %v", header, err)
		}
	}
}

type closeRecorder struct{ closed bool }

func (b *closeRecorder) Read([]byte) (int, error) { return 0, io.EOF }
func (b *closeRecorder) Close() error             { b.closed = true; return nil }

func TestResponseErrorReadsWellWithoutAStatusLine(t *testing.T) {
	for _, tt := range []struct {
		err  ResponseError
		want string
	}{
		{ResponseError{StatusCode: 403, Status: "403 Forbidden", Message: "no"}, "the server answered 403 Forbidden: no"},
		{ResponseError{StatusCode: 500}, "the server answered 500 Internal Server Error"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
