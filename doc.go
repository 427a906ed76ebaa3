// Package httpstream defines the vocabulary shared by the whole library:
// the interfaces for a multiplexed streaming connection obtained by
// upgrading an HTTP request, and the small helpers both ends of that
// upgrade need.
//
// The types have the same names and shapes as Kubernetes'
// k8s.io/apimachinery/pkg/util/httpstream, so code written against
// Kubernetes can switch to this library by changing the import path. Where
// behaviour deliberately differs (token-exact [IsUpgradeRequest], a
// non-panicking [Handshake] that always answers the client), the function's
// documentation says so and why.
//
// The root package holds no transport of its own. It exists so that the
// pieces below can depend on one small set of interfaces instead of on each
// other, and so that applications can be written against [Connection] and
// [Stream] without committing to any particular implementation:
//
//   - frame is the wire codec: it encodes and decodes the frames that
//     carry stream data and control messages, and knows nothing about
//     connections or HTTP.
//   - mux is the engine: it runs many streams over one net.Conn using
//     frame, and provides the [Connection] implementation.
//   - upgrade binds mux to HTTP/1.1 "Connection: Upgrade": it provides the
//     [ResponseUpgrader] for servers and the [UpgradeRoundTripper] and
//     [Dialer] for clients.
//
// A typical server checks [IsUpgradeRequest], negotiates the stream
// sub-protocol with [Handshake], and then hands the request to a
// [ResponseUpgrader]; a typical client offers its protocols, performs the
// upgrade through an [UpgradeRoundTripper] or a [Dialer], and uses
// [IsUpgradeFailure] to tell a refused upgrade from a network error.
package httpstream
