package mux_test

// Black-box tests of package mux, written from /work/shared/API.md (the
// "Package mux" section: one test per behaviour bullet), frame/SPEC.md
// (sections 6 to 8) and the doc comments. Data-flow tests run on net.Pipe,
// TCP and TLS; tests of timers and of "has not happened yet" run in a
// testing/synctest bubble on net.Pipe, where they are exact and take no real
// time.
//
// The tests are split by topic into api_open_test.go, api_close_test.go,
// api_flow_test.go, api_deadline_test.go, api_limits_test.go, api_conn_test.go
// and api_protocol_test.go; this file holds the helpers they share.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

// waitTimeout bounds every wait of these tests. Inside a synctest bubble it
// is fake time: a wait that can never end fails as soon as every goroutine is
// stuck, instead of hanging the run.
const waitTimeout = 10 * time.Second

// connPair is the two ends of one connection, and the raw connections under
// them (the same connections, except for TLS where they are the TCP ones).
type connPair struct {
	client, server       net.Conn
	rawClient, rawServer net.Conn
}

// transport makes a fresh connection for one test.
type transport struct {
	name string
	dial func(t testing.TB) connPair
}

// transports is the matrix data-flow tests run on. net.Pipe is synchronous
// and unbuffered, so it finds deadlocks a buffered socket hides; TCP and TLS
// are what the package runs on in production.
var transports = []transport{
	{"net.Pipe", pipeConns},
	{"TCP loopback", tcpConns},
	{"TLS over loopback", tlsConns},
}

// eachSide runs f as two subtests, since most behaviours must hold
// whichever side of the connection sets them off: first one named
// clientName with client true, then one named serverName with client false.
func eachSide(t *testing.T, clientName, serverName string, f func(t *testing.T, client bool)) {
	t.Helper()
	t.Run(clientName, func(t *testing.T) { f(t, true) })
	t.Run(serverName, func(t *testing.T) { f(t, false) })
}

func pipeConns(t testing.TB) connPair {
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return connPair{client: c, server: s, rawClient: c, rawServer: s}
}

func tcpConns(t testing.TB) connPair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	defer ln.Close() // also ends the Accept below if Dial fails
	type accepted struct {
		conn net.Conn
		err  error
	}
	acc := async(func() accepted { c, err := ln.Accept(); return accepted{c, err} })
	d := net.Dialer{Timeout: waitTimeout}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial loopback: %v", err)
	}
	a := recv(t, acc, "the loopback Accept")
	if a.err != nil {
		c.Close()
		t.Fatalf("accept on loopback: %v", a.err)
	}
	t.Cleanup(func() { c.Close(); a.conn.Close() })
	return connPair{client: c, server: a.conn, rawClient: c, rawServer: a.conn}
}

type tlsConfigs struct{ server, client *tls.Config }

// selfSigned makes one throw-away ECDSA certificate for "localhost" per test
// binary; no files are involved.
var selfSigned = sync.OnceValues(func() (tlsConfigs, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsConfigs{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tlsConfigs{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tlsConfigs{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tlsConfigs{
		server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			MinVersion:   tls.VersionTLS12,
		},
		client: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
	}, nil
})

func tlsConns(t testing.TB) connPair {
	t.Helper()
	cfg, err := selfSigned()
	if err != nil {
		t.Fatalf("self-signed certificate: %v", err)
	}
	raw := tcpConns(t)
	srv := tls.Server(raw.server, cfg.server)
	cli := tls.Client(raw.client, cfg.client)
	deadline := time.Now().Add(waitTimeout)
	handshake := func(c *tls.Conn) <-chan error {
		return async(func() error {
			c.SetDeadline(deadline)
			defer c.SetDeadline(time.Time{})
			return c.Handshake()
		})
	}
	srvDone, cliDone := handshake(srv), handshake(cli)
	if err := recv(t, srvDone, "the server's TLS handshake"); err != nil {
		t.Fatalf("server TLS handshake: %v", err)
	}
	if err := recv(t, cliDone, "the client's TLS handshake"); err != nil {
		t.Fatalf("client TLS handshake: %v", err)
	}
	return connPair{client: cli, server: srv, rawClient: raw.client, rawServer: raw.server}
}

// checkGoroutineLeaks records how many goroutines run now and, when the test
// ends (after the sessions it starts later are closed: cleanups run last
// first), waits until no more run, failing with a dump of all of them if
// that does not happen in time. Call it first in a test, and do not use it in
// a synctest bubble: synctest.Test fails by itself on a goroutine left
// blocked in the bubble.
func checkGoroutineLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.NewTimer(waitTimeout)
		defer deadline.Stop()
		poll := time.NewTicker(5 * time.Millisecond)
		defer poll.Stop()
		for {
			now := runtime.NumGoroutine()
			if now <= before {
				return
			}
			select {
			case <-poll.C:
			case <-deadline.C:
				buf := make([]byte, 4<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines before the test, still %d %v after it closed its sessions:\n%s",
					before, now, waitTimeout, buf)
				return
			}
		}
	})
}

// pairOptions configures the two sessions of startSessions. A nil handler
// refuses the peer's streams, as in the API.
type pairOptions struct {
	clientHandler, serverHandler httpstream.NewStreamHandler
	clientConfig, serverConfig   *mux.Config
}

// startSessions starts a client session on conns.client and a server session
// on conns.server, and closes both when the test ends.
func startSessions(t testing.TB, conns connPair, opts pairOptions) (cli, srv *mux.Session) {
	t.Helper()
	cli, err := mux.Client(conns.client, opts.clientHandler, opts.clientConfig)
	if err != nil {
		t.Fatalf("mux.Client: %v", err)
	}
	t.Cleanup(func() { closeSession(t, cli, "client") })
	srv, err = mux.Server(conns.server, opts.serverHandler, opts.serverConfig)
	if err != nil {
		t.Fatalf("mux.Server: %v", err)
	}
	t.Cleanup(func() { closeSession(t, srv, "server") })
	return cli, srv
}

// closeSession closes s, failing the test if Close does not return in time.
func closeSession(t testing.TB, s *mux.Session, name string) {
	t.Helper()
	done := async(s.Close)
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Errorf("the %s session's Close did not return within %v", name, waitTimeout)
	}
}

// acceptInto returns a handler that accepts every stream and hands it to the
// test through streams (give it room: a full channel blocks the handler).
func acceptInto(streams chan<- *mux.Stream) httpstream.NewStreamHandler {
	return func(st httpstream.Stream, _ <-chan struct{}) error {
		streams <- st.(*mux.Stream)
		return nil
	}
}

// acceptOnRelease returns a handler that hands every stream to the test
// through entered, then holds it until release is closed before it accepts:
// for tests of what happens while the peer's handler is still deciding.
func acceptOnRelease(entered chan<- *mux.Stream, release <-chan struct{}) httpstream.NewStreamHandler {
	return func(st httpstream.Stream, _ <-chan struct{}) error {
		entered <- st.(*mux.Stream)
		<-release
		return nil
	}
}

// echoHandler accepts every stream and sends back what it reads until the
// peer half-closes, then half-closes too.
func echoHandler(st httpstream.Stream, _ <-chan struct{}) error {
	go func() {
		io.Copy(st, st)
		st.Close()
	}()
	return nil
}

// async runs f in a goroutine and delivers its result.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

// recv waits, at most waitTimeout, for a value from ch.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		panic("unreachable")
	}
}

// notYet fails the test if ch is ready. In a synctest bubble, after
// synctest.Wait, this is an exact "has not happened" check.
func notYet[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s, but it did (with %v)", what, v)
	default:
	}
}

func isClosed(ch <-chan bool) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// eventually polls cond with a short ticker until it holds, at most
// waitTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting until %s", waitTimeout, what)
		}
	}
}

// testContext is a context that ends after waitTimeout (fake time in a
// bubble), so an OpenStream or Ping that never answers cannot hang a test.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// openStream opens a stream from s and fails the test if that fails.
func openStream(t testing.TB, s *mux.Session, headers http.Header) *mux.Stream {
	t.Helper()
	st, err := s.OpenStream(testContext(t), headers)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	return st
}

// openPair opens a stream from opener and returns it with the peer's end,
// which the peer's acceptInto handler delivers on accepted.
func openPair(t testing.TB, opener *mux.Session, accepted <-chan *mux.Stream) (local, peer *mux.Stream) {
	t.Helper()
	local = openStream(t, opener, nil)
	peer = recv(t, accepted, "the peer's handler to get the stream")
	if local.Identifier() != peer.Identifier() {
		t.Fatalf("the opener's stream has ID %d, the peer's handler got ID %d", local.Identifier(), peer.Identifier())
	}
	return local, peer
}

// sessionsWithStream starts a client and a server session on conns, as
// startSessions does, with a server that accepts every stream, and opens one
// stream from the client: st is the client's end, peer the server's. Most
// stream tests need no more than that. opts.serverHandler must be nil: the
// server's handler is the one that hands over the stream.
func sessionsWithStream(t testing.TB, conns connPair, opts pairOptions) (cli, srv *mux.Session, st, peer *mux.Stream) {
	t.Helper()
	if opts.serverHandler != nil {
		t.Fatal("sessionsWithStream sets the server's handler itself")
	}
	accepted := make(chan *mux.Stream, 1)
	opts.serverHandler = acceptInto(accepted)
	cli, srv = startSessions(t, conns, opts)
	st, peer = openPair(t, cli, accepted)
	return cli, srv, st, peer
}

// fixedWindow is a Config whose streams' receive window is n and never grows,
// for tests in which a Write must run out of window after n octets.
func fixedWindow(n uint32) *mux.Config {
	return &mux.Config{InitialStreamWindow: n, MaxStreamWindow: n}
}

// readAll reads st to io.EOF, bounded by a read deadline.
func readAll(st *mux.Stream) ([]byte, error) {
	st.SetReadDeadline(time.Now().Add(waitTimeout))
	defer st.SetReadDeadline(time.Time{})
	return io.ReadAll(st)
}

func mustReadAll(t testing.TB, st *mux.Stream, what string) []byte {
	t.Helper()
	b, err := readAll(st)
	if err != nil {
		t.Fatalf("reading %s to its end: %v (after %d bytes)", what, err, len(b))
	}
	return b
}

// readFull reads exactly n bytes from st, bounded by a read deadline.
func readFull(t testing.TB, st *mux.Stream, n int) []byte {
	t.Helper()
	st.SetReadDeadline(time.Now().Add(waitTimeout))
	defer st.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if got, err := io.ReadFull(st, b); err != nil {
		t.Fatalf("reading %d bytes: got %d, %v", n, got, err)
	}
	return b
}

// writeAndClose writes p to st and half-closes it.
func writeAndClose(st *mux.Stream, p []byte) error {
	if _, err := st.Write(p); err != nil {
		return err
	}
	return st.Close()
}

// exchange runs one request/response over a fresh stream: local sends
// question and half-closes, peer reads it to io.EOF, answers and half-closes,
// local reads the answer to io.EOF. Afterwards both sides have closed.
func exchange(t testing.TB, local, peer *mux.Stream, question, answer []byte) {
	t.Helper()
	sent := async(func() error { return writeAndClose(local, question) })
	if got := mustReadAll(t, peer, "the question"); string(got) != string(question) {
		t.Fatalf("the peer read %d bytes, want the %d the opener wrote", len(got), len(question))
	}
	if err := recv(t, sent, "the question's Write and Close"); err != nil {
		t.Fatalf("writing the question: %v", err)
	}
	answered := async(func() error { return writeAndClose(peer, answer) })
	if got := mustReadAll(t, local, "the answer"); string(got) != string(answer) {
		t.Fatalf("the opener read %d bytes, want the %d the peer wrote", len(got), len(answer))
	}
	if err := recv(t, answered, "the answer's Write and Close"); err != nil {
		t.Fatalf("writing the answer: %v", err)
	}
}

// wantEcho writes data to st and half-closes it while it reads st to its
// end, and fails the test unless what comes back is data: a check that st
// carries a whole round trip (its peer must echo). what says which stream.
func wantEcho(t testing.TB, st *mux.Stream, data []byte, what string) {
	t.Helper()
	type readResult struct {
		b   []byte
		err error
	}
	echoed := async(func() readResult { b, err := readAll(st); return readResult{b, err} })
	st.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := writeAndClose(st, data); err != nil {
		t.Fatalf("writing %s: %v", what, err)
	}
	r := recv(t, echoed, "the echo "+what)
	if r.err != nil || !bytes.Equal(r.b, data) {
		t.Fatalf("echo %s: read %d bytes (err %v), want the %d written", what, len(r.b), r.err, len(data))
	}
}

// payload returns n pseudo-random bytes, the same for the same seed.
func payload(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	mathrand.NewChaCha8(key).Read(b)
	return b
}

// wantErrIs fails the test unless errors.Is(err, target).
func wantErrIs(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one matching %v", what, err, target)
	}
}

// wantNetTimeout fails the test unless err is a net.Error whose Timeout() is
// true.
func wantNetTimeout(t testing.TB, err error, what string) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("%s: got error %v (%T), want a net.Error with Timeout() true", what, err, err)
	}
}

// wantDeadlineError fails the test unless err is what net.Conn returns past a
// deadline: a net.Error with Timeout() true that matches
// os.ErrDeadlineExceeded.
func wantDeadlineError(t testing.TB, err error, what string) {
	t.Helper()
	wantNetTimeout(t, err, what)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: got error %v, want one matching os.ErrDeadlineExceeded", what, err)
	}
}

// wantNumStreams fails the test unless both sessions track n streams.
func wantNumStreams(t testing.TB, cli, srv *mux.Session, n int) {
	t.Helper()
	if got := cli.NumStreams(); got != n {
		t.Errorf("client NumStreams() = %d, want %d", got, n)
	}
	if got := srv.NumStreams(); got != n {
		t.Errorf("server NumStreams() = %d, want %d", got, n)
	}
}

// wantOpen and wantClosed check, in a synctest bubble once everything has
// settled, whether s has ended.
func wantOpen(t testing.TB, s *mux.Session, what string) {
	t.Helper()
	synctest.Wait()
	if isClosed(s.CloseChan()) {
		t.Fatalf("%s closed at %v, want it still open", what, time.Now().Format(time.TimeOnly))
	}
}

func wantClosed(t testing.TB, s *mux.Session, what string) {
	t.Helper()
	synctest.Wait()
	if !isClosed(s.CloseChan()) {
		t.Fatalf("%s still open at %v, want it closed", what, time.Now().Format(time.TimeOnly))
	}
}

// ping pings the peer and returns the round-trip time. (In a synctest
// bubble the clock stands still while the ping travels, so the time is 0
// there; real-time tests check it is positive.)
func ping(t testing.TB, s *mux.Session, who string) time.Duration {
	t.Helper()
	rtt, err := s.Ping(testContext(t))
	if err != nil {
		t.Fatalf("%s Ping: %v", who, err)
	}
	if rtt < 0 {
		t.Errorf("%s Ping returned a negative round-trip time %v", who, rtt)
	}
	return rtt
}

// pingRTT pings the peer in real time and checks the round-trip time is
// positive.
func pingRTT(t testing.TB, s *mux.Session, who string) {
	t.Helper()
	if rtt := ping(t, s, who); rtt <= 0 {
		t.Errorf("%s Ping returned a round-trip time of %v, want > 0", who, rtt)
	}
}

// writeResult is what a Write returned.
type writeResult struct {
	n   int
	err error
}

// silentPeer makes conn's far end a peer that sends the preface and an empty
// SETTINGS frame when greet is true, and otherwise reads and discards
// everything and never writes: it never answers a PING.
func silentPeer(t testing.TB, raw net.Conn, greet bool) {
	go func() {
		if greet {
			hello := frame.AppendSettings([]byte(frame.Preface))
			if _, err := raw.Write(hello); err != nil {
				return
			}
		}
		io.Copy(io.Discard, raw)
	}()
	t.Cleanup(func() { raw.Close() })
}

// rawPeer speaks the wire protocol by hand, for tests of what a session puts
// on the wire.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	fr   *frame.Reader
}

func newRawPeer(t testing.TB, conn net.Conn) *rawPeer {
	t.Cleanup(func() { conn.Close() })
	return &rawPeer{t: t, conn: conn, fr: frame.NewReader(conn, frame.Limits{MaxFrameSize: frame.MaxLength, MaxHeaderBytes: frame.MaxLength})}
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

// writeOpen writes prefix and, after it in the same Write, an OPEN of stream
// id without headers: the tests open streams by hand, some right behind the
// preface.
func (p *rawPeer) writeOpen(prefix []byte, id uint32) {
	p.t.Helper()
	b, err := frame.AppendOpen(prefix, id, nil)
	if err != nil {
		p.t.Fatalf("encoding an OPEN of stream %d: %v", id, err)
	}
	p.write(b)
}

// next reads frames until one of type ft arrives on stream id, skipping the
// others (the session's PINGs, WINDOW_UPDATEs), and returns a copy of it. It
// never writes: on a net.Pipe, a write here could wait for a session that is
// itself waiting for this peer to read.
func (p *rawPeer) next(ft frame.FrameType, id uint32) frame.Frame {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("raw peer waiting for %v on stream %d: %v", ft, id, err)
		}
		if f.Type == frame.FramePing && !f.Flags.Has(frame.FlagAck) {
			continue // the session's keepalive or RTT probe: left unanswered
		}
		if f.Type == ft && f.StreamID == id {
			return *f
		}
	}
}

// serverWithRawClient starts a mux.Server with handler and cfg on one end of
// a net.Pipe and returns it with a rawPeer on the other end that has read the
// server's preface (and nothing else yet), for tests of what a server does
// with frames a client writes by hand. The session is closed when the test
// ends, after the pipe.
func serverWithRawClient(t testing.TB, handler httpstream.NewStreamHandler, cfg *mux.Config) (srv *mux.Session, client *rawPeer) {
	t.Helper()
	rawEnd, srvEnd := net.Pipe()
	srv, err := mux.Server(srvEnd, handler, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSession(t, srv, "server") })
	client = newRawPeer(t, rawEnd)
	if err := client.fr.ReadPreface(); err != nil {
		t.Fatalf("reading the server's preface: %v", err)
	}
	return srv, client
}

// rawClientWithAcceptedStream is serverWithRawClient with a server (default
// Config) that accepts every stream, after the raw client sent its preface,
// SETTINGS and an OPEN of stream 1 in one Write and got the ACCEPT: st is the
// server's end of stream 1, for tests of frames that arrive on an open stream.
func rawClientWithAcceptedStream(t testing.TB) (srv *mux.Session, client *rawPeer, st *mux.Stream) {
	t.Helper()
	accepted := make(chan *mux.Stream, 1)
	srv, client = serverWithRawClient(t, acceptInto(accepted), nil)
	client.writeOpen(frame.AppendSettings([]byte(frame.Preface)), 1)
	client.next(frame.FrameAccept, 1)
	st = recv(t, accepted, "the server's handler")
	return srv, client, st
}

func (f writeResult) String() string { return fmt.Sprintf("(%d, %v)", f.n, f.err) }
