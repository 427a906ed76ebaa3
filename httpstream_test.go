package httpstream

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestIsUpgradeRequest(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   bool
	}{
		{
			name:   "canonical Upgrade token is an upgrade",
			header: http.Header{"Connection": {"Upgrade"}},
			want:   true,
		},
		{
			name:   "lower-case upgrade token is an upgrade",
			header: http.Header{"Connection": {"upgrade"}},
			want:   true,
		},
		{
			name:   "upgrade token later in a comma list is an upgrade",
			header: http.Header{"Connection": {"keep-alive, Upgrade"}},
			want:   true,
		},
		{
			name:   "upgrade token with a space before the comma is an upgrade",
			header: http.Header{"Connection": {"Upgrade , close"}},
			want:   true,
		},
		{
			name:   "upgrade token surrounded by tabs is an upgrade",
			header: http.Header{"Connection": {"close,\tUPGRADE\t"}},
			want:   true,
		},
		{
			name:   "upgrade token on the second Connection line is an upgrade",
			header: http.Header{"Connection": {"keep-alive", "Upgrade"}},
			want:   true,
		},
		{
			name:   "Connection without the upgrade token is not an upgrade",
			header: http.Header{"Connection": {"keep-alive, close"}},
			want:   false,
		},
		{
			name:   "upgraded is not the upgrade token",
			header: http.Header{"Connection": {"upgraded"}},
			want:   false,
		},
		{
			name:   "x-upgrade is not the upgrade token",
			header: http.Header{"Connection": {"x-upgrade"}},
			want:   false,
		},
		{
			name:   "Upgrade header without the Connection token is not an upgrade",
			header: http.Header{"Connection": {"keep-alive"}, "Upgrade": {"SPDY/3.1"}},
			want:   false,
		},
		{
			name:   "upgrade token in another header is not an upgrade",
			header: http.Header{"X-Connection": {"Upgrade"}},
			want:   false,
		},
		{
			name:   "empty Connection header is not an upgrade",
			header: http.Header{"Connection": {""}},
			want:   false,
		},
		{
			name:   "nil header map is not an upgrade",
			header: nil,
			want:   false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
			req.Header = tt.header
			if got := IsUpgradeRequest(req); got != tt.want {
				t.Errorf("IsUpgradeRequest(header %q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestIsUpgradeRequestReturnsFalseForNilRequest(t *testing.T) {
	if IsUpgradeRequest(nil) {
		t.Error("IsUpgradeRequest(nil) = true, want false")
	}
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name string
		// clientLines are added one per X-Stream-Protocol-Version line;
		// nil means the header is absent.
		clientLines     []string
		serverProtocols []string

		wantProtocol string
		wantErr      bool
		wantStatus   int
		// wantAccepted is the expected X-Accepted-Stream-Protocol-Versions
		// value list; nil means the header must be absent.
		wantAccepted []string
		// wantBody is a substring the error response body must contain.
		wantBody string
	}{
		{
			name:            "single common protocol is chosen",
			clientLines:     []string{"v1"},
			serverProtocols: []string{"v1"},
			wantProtocol:    "v1",
			wantStatus:      http.StatusOK,
		},
		{
			name:            "first client preference wins even when the server lists it later",
			clientLines:     []string{"v2", "v1"},
			serverProtocols: []string{"v1", "v2"},
			wantProtocol:    "v2",
			wantStatus:      http.StatusOK,
		},
		{
			name:            "comma-separated values on one line are split and trimmed",
			clientLines:     []string{"v3 ,  v2,v1"},
			serverProtocols: []string{"v1", "v2"},
			wantProtocol:    "v2",
			wantStatus:      http.StatusOK,
		},
		{
			name:            "several lines are read in order",
			clientLines:     []string{"v4, v3", "v2", "v1"},
			serverProtocols: []string{"v1", "v2"},
			wantProtocol:    "v2",
			wantStatus:      http.StatusOK,
		},
		{
			name:            "missing header is a 400 error",
			clientLines:     nil,
			serverProtocols: []string{"v1"},
			wantErr:         true,
			wantStatus:      http.StatusBadRequest,
			wantBody:        HeaderProtocolVersion + " is required",
		},
		{
			name:            "empty header value is a 400 error",
			clientLines:     []string{""},
			serverProtocols: []string{"v1"},
			wantErr:         true,
			wantStatus:      http.StatusBadRequest,
			wantBody:        HeaderProtocolVersion + " is required",
		},
		{
			name:            "header holding only commas and spaces is a 400 error",
			clientLines:     []string{" , ,"},
			serverProtocols: []string{"v1"},
			wantErr:         true,
			wantStatus:      http.StatusBadRequest,
			wantBody:        HeaderProtocolVersion + " is required",
		},
		{
			name:            "no common protocol is a 403 error listing the server protocols",
			clientLines:     []string{"v3, v4"},
			serverProtocols: []string{"v1", "v2"},
			wantErr:         true,
			wantStatus:      http.StatusForbidden,
			wantAccepted:    []string{"v1", "v2"},
			wantBody:        "client supports [v3 v4], server accepts [v1 v2]",
		},
		{
			name:            "protocols are compared case-sensitively",
			clientLines:     []string{"V1"},
			serverProtocols: []string{"v1"},
			wantErr:         true,
			wantStatus:      http.StatusForbidden,
			wantAccepted:    []string{"v1"},
		},
		{
			name:            "empty server list is a 500 error instead of a panic",
			clientLines:     []string{"v1"},
			serverProtocols: []string{},
			wantErr:         true,
			wantStatus:      http.StatusInternalServerError,
			wantBody:        "no stream protocols configured",
		},
		{
			name:            "nil server list is a 500 error instead of a panic",
			clientLines:     []string{"v1"},
			serverProtocols: nil,
			wantErr:         true,
			wantStatus:      http.StatusInternalServerError,
			wantBody:        "no stream protocols configured",
		},
		{
			name:            "empty server list is reported even when the client sent nothing",
			clientLines:     nil,
			serverProtocols: nil,
			wantErr:         true,
			wantStatus:      http.StatusInternalServerError,
			wantBody:        "no stream protocols configured",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
			for _, line := range tt.clientLines {
				req.Header.Add(HeaderProtocolVersion, line)
			}
			rec := httptest.NewRecorder()

			var (
				got string
				err error
			)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Handshake panicked: %v", r)
					}
				}()
				got, err = Handshake(req, rec, tt.serverProtocols)
			}()

			if got != tt.wantProtocol {
				t.Errorf("Handshake() protocol = %q, want %q", got, tt.wantProtocol)
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("Handshake() error = %v, want error: %v", err, tt.wantErr)
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("response status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if accepted := rec.Header().Values(HeaderAcceptedProtocolVersions); !slices.Equal(accepted, tt.wantAccepted) {
				t.Errorf("%s = %q, want %q", HeaderAcceptedProtocolVersions, accepted, tt.wantAccepted)
			}

			if tt.wantErr {
				body := rec.Body.String()
				if !strings.Contains(body, tt.wantBody) {
					t.Errorf("response body = %q, want it to contain %q", body, tt.wantBody)
				}
				if v := rec.Header().Values(HeaderProtocolVersion); len(v) != 0 {
					t.Errorf("%s = %q on failure, want it absent", HeaderProtocolVersion, v)
				}
				return
			}
			if v := rec.Header().Values(HeaderProtocolVersion); !slices.Equal(v, []string{tt.wantProtocol}) {
				t.Errorf("%s = %q, want [%q]", HeaderProtocolVersion, v, tt.wantProtocol)
			}
			// Success must leave the response uncommitted so the caller
			// can still send 101 Switching Protocols.
			if rec.Body.Len() != 0 {
				t.Errorf("response body = %q on success, want nothing written", rec.Body.String())
			}
		})
	}
}

func TestHandshakeReplacesAnAcceptedHeaderSetEarlier(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	req.Header.Set(HeaderProtocolVersion, "v9")
	rec := httptest.NewRecorder()
	rec.Header().Add(HeaderAcceptedProtocolVersions, "stale")

	if _, err := Handshake(req, rec, []string{"v1", "v2"}); err == nil {
		t.Fatal("Handshake() error = nil, want an error for no common protocol")
	}
	want := []string{"v1", "v2"}
	if got := rec.Header().Values(HeaderAcceptedProtocolVersions); !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", HeaderAcceptedProtocolVersions, got, want)
	}
}

func TestUpgradeFailureError(t *testing.T) {
	cause := errors.New("server returned 403 Forbidden")
	tests := []struct {
		name      string
		err       error
		wantIs    bool
		wantCause error
	}{
		{
			name:      "a direct UpgradeFailureError is an upgrade failure",
			err:       &UpgradeFailureError{Cause: cause},
			wantIs:    true,
			wantCause: cause,
		},
		{
			name:      "an UpgradeFailureError wrapped twice with %w is an upgrade failure",
			err:       fmt.Errorf("exec: %w", fmt.Errorf("dial: %w", &UpgradeFailureError{Cause: cause})),
			wantIs:    true,
			wantCause: cause,
		},
		{
			name:      "an UpgradeFailureError without a cause is an upgrade failure",
			err:       &UpgradeFailureError{},
			wantIs:    true,
			wantCause: nil,
		},
		{
			name:   "a nil error is not an upgrade failure",
			err:    nil,
			wantIs: false,
		},
		{
			name:   "an unrelated error is not an upgrade failure",
			err:    errors.New("connection reset by peer"),
			wantIs: false,
		},
		{
			name:   "an unrelated error wrapped with %w is not an upgrade failure",
			err:    fmt.Errorf("dial: %w", errors.New("connection refused")),
			wantIs: false,
		},
		{
			name:   "an UpgradeFailureError formatted with %v instead of %w is not an upgrade failure",
			err:    fmt.Errorf("dial: %v", &UpgradeFailureError{Cause: cause}),
			wantIs: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsUpgradeFailure(tt.err); got != tt.wantIs {
				t.Errorf("IsUpgradeFailure(%v) = %v, want %v", tt.err, got, tt.wantIs)
			}
			if !tt.wantIs {
				return
			}
			var ufe *UpgradeFailureError
			if !errors.As(tt.err, &ufe) {
				t.Fatalf("errors.As(%v, *UpgradeFailureError) = false, want true", tt.err)
			}
			if got := errors.Unwrap(ufe); got != tt.wantCause {
				t.Errorf("errors.Unwrap(UpgradeFailureError) = %v, want %v", got, tt.wantCause)
			}
			if tt.wantCause != nil && !errors.Is(tt.err, tt.wantCause) {
				t.Errorf("errors.Is(%v, cause) = false, want true", tt.err)
			}
		})
	}
}

func TestUpgradeFailureErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *UpgradeFailureError
		want string
	}{
		{
			name: "message names the cause after the Kubernetes prefix",
			err:  &UpgradeFailureError{Cause: errors.New("server returned 403 Forbidden")},
			want: "unable to upgrade streaming request: server returned 403 Forbidden",
		},
		{
			name: "message without a cause is the bare prefix",
			err:  &UpgradeFailureError{},
			want: "unable to upgrade streaming request",
		},
		{
			name: "nil pointer does not panic",
			err:  nil,
			want: "unable to upgrade streaming request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNoOpNewStreamHandlerAcceptsEveryStream(t *testing.T) {
	// The assignment also proves the function fits the NewStreamHandler type.
	var h NewStreamHandler = NoOpNewStreamHandler
	replySent := make(chan struct{})
	close(replySent)
	if err := h(nil, replySent); err != nil {
		t.Errorf("NoOpNewStreamHandler() = %v, want nil", err)
	}
}
