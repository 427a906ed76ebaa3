package upgrade_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/upgrade"
)

// execHandler serves a toy remote command the way a kubelet serves
// kubectl exec: after negotiating the sub-protocol, it upgrades, takes one
// stream per channel (stdin, stdout, stderr and error), told apart by the
// Streamtype header, runs the command (it upper-cases its input) and
// reports success by closing the error stream empty.
func execHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := httpstream.Handshake(r, w, []string{"v5.channel.k8s.io"}); err != nil {
		return // Handshake has answered the client
	}
	streams := make(chan httpstream.Stream, 4)
	conn := upgrade.NewResponseUpgrader().UpgradeResponse(w, r,
		func(s httpstream.Stream, replySent <-chan struct{}) error {
			// Keep the handler short: it runs once per stream, in order.
			select {
			case streams <- s:
				return nil
			default:
				return errors.New("an exec session has four streams")
			}
		})
	if conn == nil {
		return // UpgradeResponse has answered the client
	}
	defer conn.Close()

	byType := make(map[string]httpstream.Stream)
	for len(byType) < 4 {
		select {
		case s := <-streams:
			byType[s.Headers().Get("Streamtype")] = s
		case <-conn.CloseChan():
			return
		}
	}
	input, _ := io.ReadAll(byType["stdin"])
	_, _ = byType["stdout"].Write(bytes.ToUpper(input))
	_ = byType["stdout"].Close() // half-close: the client reads io.EOF
	_, _ = fmt.Fprintf(byType["stderr"], "read %d bytes", len(input))
	_ = byType["stderr"].Close()
	_ = byType["error"].Close() // nothing on the error stream: success

	// Closing the connection resets its streams, so wait for the client to
	// read everything and close its end.
	<-conn.CloseChan()
}

// The client side of an exec session: one stream for each channel of the
// remote command.
func Example_exec() {
	srv := httptest.NewServer(http.HandlerFunc(execHandler))
	defer srv.Close()

	rt, err := upgrade.NewRoundTripper(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	u, _ := url.Parse(srv.URL + "/exec?command=upcase")
	conn, protocol, err := upgrade.NewDialer(rt, nil, http.MethodPost, u).Dial("v5.channel.k8s.io", "v4.channel.k8s.io")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println("protocol:", protocol)

	streams := make(map[string]httpstream.Stream)
	for _, streamType := range []string{"error", "stdin", "stdout", "stderr"} {
		s, err := conn.CreateStream(http.Header{"Streamtype": {streamType}})
		if err != nil {
			fmt.Println(err)
			return
		}
		streams[streamType] = s
	}
	_, _ = io.WriteString(streams["stdin"], "hello, world")
	_ = streams["stdin"].Close() // end of input

	stdout, _ := io.ReadAll(streams["stdout"])
	stderr, _ := io.ReadAll(streams["stderr"])
	failure, _ := io.ReadAll(streams["error"])
	fmt.Printf("stdout: %s\nstderr: %s\nfailed: %v\n", stdout, stderr, len(failure) > 0)

	// Output:
	// protocol: v5.channel.k8s.io
	// stdout: HELLO, WORLD
	// stderr: read 12 bytes
	// failed: false
}

// A client that offers no protocol the server speaks learns what the
// server accepts, and can tell the refusal from a network failure.
func Example_refused() {
	srv := httptest.NewServer(http.HandlerFunc(execHandler))
	defer srv.Close()

	rt, err := upgrade.NewRoundTripper(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	u, _ := url.Parse(srv.URL + "/exec")
	_, _, err = upgrade.NewDialer(rt, nil, http.MethodPost, u).Dial("v1.channel.k8s.io")
	var refusal *upgrade.ResponseError
	if errors.As(err, &refusal) {
		fmt.Println("refused:", httpstream.IsUpgradeFailure(err), refusal.StatusCode)
	}

	// Output:
	// refused: true 403
}

// A server that upgrades, set up for clients it cannot trust. Until
// UpgradeResponse takes the connection over, it belongs to the
// http.Server, and only the server's ReadHeaderTimeout stops a client that
// sends its request headers a byte at a time, or never finishes them:
// http.Server sets none by default. UpgradeResponse clears the deadline
// when it takes the connection, so the timeout never cuts a session short.
func Example_server() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(execHandler),
		ReadHeaderTimeout: 10 * time.Second, // bounds the request's headers, before the upgrade
		MaxHeaderBytes:    64 << 10,         // and their size
	}
	// Serve returns when Close closes the listener.
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	rt, err := upgrade.NewRoundTripper(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	u, _ := url.Parse("http://" + ln.Addr().String() + "/exec")
	conn, protocol, err := upgrade.NewDialer(rt, nil, http.MethodPost, u).Dial("v5.channel.k8s.io")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println("protocol:", protocol)

	// Output:
	// protocol: v5.channel.k8s.io
}
