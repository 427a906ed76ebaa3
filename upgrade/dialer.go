package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/internal/safetext"
)

// dialer is the httpstream.Dialer NewDialer returns.
type dialer struct {
	rt     httpstream.UpgradeRoundTripper
	client *http.Client
	method string
	url    *url.URL
}

// NewDialer returns an httpstream.Dialer that upgrades a method request to
// u, as Kubernetes' spdy.NewDialer does. The request goes through client,
// whose Transport must be rt or wrap it (adding authentication, say);
// a nil client sends it through rt directly. NewConnection of rt turns
// the response into the Connection, a *mux.Session for this package's
// RoundTripper.
//
// Its Dial is bounded by the RoundTripper's HandshakeTimeout (30 seconds
// by default); pass it to DialContext to bound or cancel it with a
// context as well.
func NewDialer(rt httpstream.UpgradeRoundTripper, client *http.Client, method string, u *url.URL) httpstream.Dialer {
	return &dialer{rt: rt, client: client, method: method, url: u}
}

// Dial sends the upgrade request offering protocols, most preferred first,
// each as its own X-Stream-Protocol-Version header line, and returns the
// Connection and the protocol the server chose (its
// X-Stream-Protocol-Version answer, see httpstream.Handshake), which is ""
// if it chose none. When the server refuses with 403 and lists what it
// accepts in X-Accepted-Stream-Protocol-Versions, the error names both
// lists; it still satisfies httpstream.IsUpgradeFailure. It is
// DialContext with context.Background().
func (d *dialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	return d.DialContext(context.Background(), protocols...)
}

// DialContext is Dial bounded by ctx as well: its end aborts the dial,
// the handshake and the reading of a refusal, with an error that wraps
// its cause. Once Dial has returned the Connection, ctx no longer matters.
func (d *dialer) DialContext(ctx context.Context, protocols ...string) (httpstream.Connection, string, error) {
	if ctx == nil {
		return nil, "", errors.New("upgrade: DialContext needs a context, got nil")
	}
	if d.rt == nil {
		return nil, "", errors.New("upgrade: NewDialer was given a nil UpgradeRoundTripper: pass the one the client's Transport uses")
	}
	if d.url == nil {
		return nil, "", errors.New("upgrade: NewDialer was given a nil URL: pass the server's http or https URL")
	}
	req, err := newRequest(d.method, d.url)
	if err != nil {
		return nil, "", fmt.Errorf("upgrade: building the %s request to %s: %w", d.method, d.url.Redacted(), err)
	}
	req = req.WithContext(ctx)
	for _, p := range protocols {
		req.Header.Add(httpstream.HeaderProtocolVersion, p)
	}
	client := d.client
	if client == nil {
		client = &http.Client{Transport: d.rt}
	}
	resp, err := client.Do(req)
	if err != nil {
		// http.Client wraps the RoundTripper's error in a *url.Error, whose
		// Timeout looks only one level down: unwrapped, the error of a
		// timed-out handshake is a net.Error with Timeout true, as
		// RoundTrip's is. Op and URL (without its password) stay in the text.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s %q: %w", ue.Op, ue.URL, ue.Err)
		}
		return nil, "", fmt.Errorf("upgrade: sending the upgrade request: %w", err)
	}
	// Closing after NewConnection took the connection only stops what
	// wrappers attached to the body, such as http.Client's timeout timer.
	defer resp.Body.Close()

	conn, err := d.rt.NewConnection(resp)
	if err != nil {
		if accepted := resp.Header.Values(httpstream.HeaderAcceptedProtocolVersions); resp.StatusCode == http.StatusForbidden && len(accepted) > 0 && !namesAll(err.Error(), accepted) {
			// The list is the server's text, so it is made safe to print.
			// A server whose message already names them (this library's
			// and Kubernetes' Handshake do) is not repeated.
			return nil, "", fmt.Errorf("the server accepts none of the stream protocols offered %q; it accepts [%s]: %w",
				protocols, safetext.Sanitize(strings.Join(accepted, ", "), maxStatusBytes), err)
		}
		return nil, "", err
	}
	return conn, resp.Header.Get(httpstream.HeaderProtocolVersion), nil
}

// contextDialer is a Dialer that can be bounded by a context, as the one
// NewDialer returns.
type contextDialer interface {
	DialContext(ctx context.Context, protocols ...string) (httpstream.Connection, string, error)
}

// DialContext dials with d, bounded by ctx: the context-taking form of
// httpstream.Dialer's Dial. With the Dialer NewDialer returns, ctx bounds
// the dial, the handshake and the reading of a refusal, and its end aborts
// them at once with an error that wraps its cause (context.Canceled,
// context.DeadlineExceeded); the RoundTripper's HandshakeTimeout still
// applies within it. Once the Connection is returned, ctx no longer
// matters.
//
// A Dialer from elsewhere that has a DialContext(ctx, protocols...) method
// is called through it. Any other Dialer is called on a goroutine of its
// own: when ctx ends first, DialContext returns at once with ctx's error,
// and the Connection that Dial may still return later is closed.
func DialContext(ctx context.Context, d httpstream.Dialer, protocols ...string) (httpstream.Connection, string, error) {
	if d == nil {
		return nil, "", errors.New("upgrade: DialContext needs a Dialer, got nil")
	}
	if cd, ok := d.(contextDialer); ok {
		return cd.DialContext(ctx, protocols...)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, "", fmt.Errorf("upgrade: dialing: %w", err)
	}
	type result struct {
		conn     httpstream.Connection
		protocol string
		err      error
	}
	done := make(chan result, 1)
	// Owned by d: it ends when d.Dial returns; a result nobody waits for
	// any more is closed.
	go func() {
		conn, protocol, err := d.Dial(protocols...)
		done <- result{conn, protocol, err}
	}()
	select {
	case r := <-done:
		return r.conn, r.protocol, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, "", fmt.Errorf("upgrade: dialing: %w", context.Cause(ctx))
	}
}

// newRequest builds the request for method and a copy of u. Going through
// u.String() and back, as http.NewRequest would, is avoided: a URL that
// does not survive the round trip (one built field by field, with a bad
// port, say) would fail with a *url.Error quoting the whole URL, password
// included. The copy is checked by RoundTrip, whose errors redact it.
func newRequest(method string, u *url.URL) (*http.Request, error) {
	// A request to "/" validates the method as http.NewRequest does, then
	// gets the real URL.
	req, err := http.NewRequest(method, "/", nil)
	if err != nil {
		return nil, err
	}
	copied := *u // the request may be modified on the way; the caller's URL is not
	req.URL = &copied
	req.Host = strings.TrimSuffix(copied.Host, ":") // "host:" means the default port, as in http.NewRequest
	return req, nil
}

// namesAll reports whether text contains each of names.
func namesAll(text string, names []string) bool {
	for _, n := range names {
		if !strings.Contains(text, n) {
			return false
		}
	}
	return true
}
