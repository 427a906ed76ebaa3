package upgrade

import (
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
// the response into the Connection.
func NewDialer(rt httpstream.UpgradeRoundTripper, client *http.Client, method string, u *url.URL) httpstream.Dialer {
	return &dialer{rt: rt, client: client, method: method, url: u}
}

// Dial sends the upgrade request offering protocols, most preferred first,
// each as its own X-Stream-Protocol-Version header line, and returns the
// Connection and the protocol the server chose (its
// X-Stream-Protocol-Version answer, see httpstream.Handshake), which is ""
// if it chose none. When the server refuses with 403 and lists what it
// accepts in X-Accepted-Stream-Protocol-Versions, the error names both
// lists; it still satisfies httpstream.IsUpgradeFailure.
func (d *dialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
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
	for _, p := range protocols {
		req.Header.Add(httpstream.HeaderProtocolVersion, p)
	}
	client := d.client
	if client == nil {
		client = &http.Client{Transport: d.rt}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("upgrade: sending the upgrade request: %w", err)
	}
	// Closing after NewConnection took the connection only stops what
	// wrappers attached to the body, such as http.Client's timeout timer.
	defer resp.Body.Close()

	conn, err := d.rt.NewConnection(resp)
	if err != nil {
		if accepted := resp.Header.Values(httpstream.HeaderAcceptedProtocolVersions); resp.StatusCode == http.StatusForbidden && len(accepted) > 0 {
			// The list is the server's text, so it is made safe to print.
			return nil, "", fmt.Errorf("the server accepts none of the stream protocols offered %q; it accepts [%s]: %w",
				protocols, safetext.Sanitize(strings.Join(accepted, ", "), maxStatusBytes), err)
		}
		return nil, "", err
	}
	return conn, resp.Header.Get(httpstream.HeaderProtocolVersion), nil
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
