// Package kube runs Kubernetes' kubelet-side streaming handlers and
// client-go's port-forward and exec clients over this library, and over
// Kubernetes' own SPDY stack as the control. See README.md.
package kube

import (
	"net/http"
	"net/url"
	"time"

	k8sstream "k8s.io/apimachinery/pkg/util/httpstream"
	restclient "k8s.io/client-go/rest"
	k8sspdy "k8s.io/client-go/transport/spdy"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/upgrade"
)

// The adapters below only change the package of the interface types:
// k8s.io/apimachinery/pkg/util/httpstream declares the same interfaces as
// this library's root package, method for method, but Go's interface types
// are not interchangeable where they appear in method signatures
// (CreateStream's result, RemoveStreams' parameters, Dial's result). A
// Stream needs no adapter: this library's streams have exactly
// Kubernetes' Stream methods, so they are passed through as they are.

// Dialer is a Kubernetes httpstream.Dialer (what client-go's
// portforward.New takes) over this library's Dialer.
type Dialer struct{ D httpstream.Dialer }

var _ k8sstream.Dialer = Dialer{}

// Dial forwards to D.Dial.
func (d Dialer) Dial(protocols ...string) (k8sstream.Connection, string, error) {
	c, proto, err := d.D.Dial(protocols...)
	if err != nil {
		return nil, "", err
	}
	return Connection{C: c}, proto, nil
}

// Upgrader is client-go's spdy.Upgrader (what the SPDY executor takes)
// over this library's UpgradeRoundTripper.
type Upgrader struct {
	U httpstream.UpgradeRoundTripper
}

var _ k8sspdy.Upgrader = Upgrader{}

// NewConnection forwards to U.NewConnection.
func (u Upgrader) NewConnection(resp *http.Response) (k8sstream.Connection, error) {
	c, err := u.U.NewConnection(resp)
	if err != nil {
		return nil, err
	}
	return Connection{C: c}, nil
}

// Connection is a Kubernetes httpstream.Connection over this library's.
type Connection struct{ C httpstream.Connection }

var _ k8sstream.Connection = Connection{}

// CreateStream forwards to C.CreateStream.
func (c Connection) CreateStream(headers http.Header) (k8sstream.Stream, error) {
	s, err := c.C.CreateStream(headers)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close forwards to C.Close.
func (c Connection) Close() error { return c.C.Close() }

// CloseChan forwards to C.CloseChan.
func (c Connection) CloseChan() <-chan bool { return c.C.CloseChan() }

// SetIdleTimeout forwards to C.SetIdleTimeout.
func (c Connection) SetIdleTimeout(timeout time.Duration) { c.C.SetIdleTimeout(timeout) }

// RemoveStreams forwards to C.RemoveStreams. The streams are the ones
// CreateStream returned, this library's own.
func (c Connection) RemoveStreams(streams ...k8sstream.Stream) {
	ours := make([]httpstream.Stream, 0, len(streams))
	for _, s := range streams {
		if s, ok := s.(httpstream.Stream); ok {
			ours = append(ours, s)
		}
	}
	c.C.RemoveStreams(ours...)
}

// RoundTripperFor is client-go's spdy.RoundTripperFor with this library's
// round tripper in place of Kubernetes' SPDY one, built the same way: TLS
// and proxy from the rest config, a 5s ping period, and the rest config's
// HTTP wrappers (user agent, auth) around it. The first result goes to
// the executor as its transport, the second as its upgrader.
func RoundTripperFor(config *restclient.Config) (http.RoundTripper, Upgrader, error) {
	tlsConfig, err := restclient.TLSConfigFor(config)
	if err != nil {
		return nil, Upgrader{}, err
	}
	proxy := http.ProxyFromEnvironment
	if config.Proxy != nil {
		proxy = config.Proxy
	}
	rt, err := upgrade.NewRoundTripperWithConfig(upgrade.RoundTripperConfig{
		TLS:        tlsConfig,
		Proxier:    proxy,
		PingPeriod: 5 * time.Second,
	})
	if err != nil {
		return nil, Upgrader{}, err
	}
	wrapper, err := restclient.HTTPWrappersForConfig(config, rt)
	if err != nil {
		return nil, Upgrader{}, err
	}
	return wrapper, Upgrader{U: rt}, nil
}

// NewDialer is client-go's spdy.NewDialer for this library: a Kubernetes
// Dialer that upgrades a method request to url through client, whose
// transport wraps the round tripper behind upgrader (see RoundTripperFor).
func NewDialer(upgrader Upgrader, client *http.Client, method string, u *url.URL) k8sstream.Dialer {
	return Dialer{D: upgrade.NewDialer(upgrader.U, client, method, u)}
}
