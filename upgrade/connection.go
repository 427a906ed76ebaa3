package upgrade

import (
	"net"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

// NewClientConnection starts the client end of a session on conn, a
// connection whose upgrade has already happened elsewhere, as Kubernetes'
// spdy.NewClientConnection does: kubectl's port-forward tunnel, for one,
// upgrades through a WebSocket and then builds the Connection this way. The
// session uses the engine's defaults and refuses streams the server opens.
// It is a *mux.Session.
func NewClientConnection(conn net.Conn) (httpstream.Connection, error) {
	return NewClientConnectionWithPings(conn, 0)
}

// NewClientConnectionWithPings is NewClientConnection with a keepalive ping
// every pingPeriod while the connection is quiet. As with
// RoundTripperConfig.PingPeriod, 0 keeps the default period and a negative
// one sends no pings of its own (the session still answers the server's).
func NewClientConnectionWithPings(conn net.Conn, pingPeriod time.Duration) (httpstream.Connection, error) {
	s, err := mux.Client(conn, nil, sessionConfig(nil, pingPeriod))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// NewServerConnection starts the server end of a session on conn, a
// connection whose upgrade has already been answered, as Kubernetes'
// spdy.NewServerConnection does. newStreamHandler runs for every stream the
// client opens (nil refuses them). It is a *mux.Session.
func NewServerConnection(conn net.Conn, newStreamHandler httpstream.NewStreamHandler) (httpstream.Connection, error) {
	return NewServerConnectionWithPings(conn, newStreamHandler, 0)
}

// NewServerConnectionWithPings is NewServerConnection with a keepalive ping
// every pingPeriod while the connection is quiet; 0 keeps the default, a
// negative period sends none.
func NewServerConnectionWithPings(conn net.Conn, newStreamHandler httpstream.NewStreamHandler, pingPeriod time.Duration) (httpstream.Connection, error) {
	s, err := mux.Server(conn, newStreamHandler, sessionConfig(nil, pingPeriod))
	if err != nil {
		return nil, err
	}
	return s, nil
}
