package httpstream_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/httpstream-go/httpstream"
)

func ExampleHandshake() {
	serverProtocols := []string{"v4.channel.k8s.io", "v5.channel.k8s.io"}

	// The client prefers v5; the server supports it, so v5 wins even though
	// the server lists it second.
	req := httptest.NewRequest(http.MethodGet, "http://example.com/exec", nil)
	req.Header.Set(httpstream.HeaderProtocolVersion, "v5.channel.k8s.io, v4.channel.k8s.io")
	rec := httptest.NewRecorder()
	protocol, err := httpstream.Handshake(req, rec, serverProtocols)
	fmt.Println("chosen:", protocol, err)
	fmt.Println("response header:", rec.Header().Get(httpstream.HeaderProtocolVersion))

	// A client that offers nothing the server speaks is refused, and told
	// what the server would accept.
	req = httptest.NewRequest(http.MethodGet, "http://example.com/exec", nil)
	req.Header.Set(httpstream.HeaderProtocolVersion, "v1.channel.k8s.io")
	rec = httptest.NewRecorder()
	_, err = httpstream.Handshake(req, rec, serverProtocols)
	fmt.Println("status:", rec.Code, err != nil)
	fmt.Println("accepted:", rec.Header().Values(httpstream.HeaderAcceptedProtocolVersions))

	// Output:
	// chosen: v5.channel.k8s.io <nil>
	// response header: v5.channel.k8s.io
	// status: 403 true
	// accepted: [v4.channel.k8s.io v5.channel.k8s.io]
}

func ExampleIsUpgradeRequest() {
	for _, connection := range []string{"keep-alive, Upgrade", "keep-alive", "upgraded"} {
		req := httptest.NewRequest(http.MethodGet, "http://example.com/exec", nil)
		req.Header.Set(httpstream.HeaderConnection, connection)
		req.Header.Set(httpstream.HeaderUpgrade, "SPDY/3.1")
		fmt.Printf("%q: %v\n", connection, httpstream.IsUpgradeRequest(req))
	}

	// Output:
	// "keep-alive, Upgrade": true
	// "keep-alive": false
	// "upgraded": false
}
