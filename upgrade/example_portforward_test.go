package upgrade_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/upgrade"
)

// portForwardHandler serves port forwarding the way a kubelet does: every
// forwarded connection is a pair of streams, an error stream and a data
// stream, sharing a Requestid header; the data stream is spliced to a
// connection to the backend, and a failure to reach it is reported on the
// error stream.
func portForwardHandler(backend string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var forwards sync.WaitGroup
		// Only the stream handler touches errorStreams, and the session
		// runs it for one stream at a time, so it needs no lock.
		errorStreams := make(map[string]httpstream.Stream)
		conn := upgrade.NewResponseUpgrader().UpgradeResponse(w, r,
			func(s httpstream.Stream, replySent <-chan struct{}) error {
				id := s.Headers().Get("Requestid")
				switch s.Headers().Get("Streamtype") {
				case "error":
					errorStreams[id] = s
					return nil
				case "data":
					errorStream, ok := errorStreams[id]
					if !ok {
						return errors.New("a data stream needs its error stream first")
					}
					delete(errorStreams, id)
					forwards.Add(1)
					go func() { // ends when either side of the splice closes
						defer forwards.Done()
						forwardToBackend(s, errorStream, backend)
					}()
					return nil
				default:
					return errors.New("unknown Streamtype")
				}
			})
		if conn == nil {
			return
		}
		<-conn.CloseChan() // the client closes when it stops forwarding
		forwards.Wait()
	}
}

// forwardToBackend splices data to a new connection to backend.
func forwardToBackend(data, errorStream httpstream.Stream, backend string) {
	defer errorStream.Close()
	c, err := net.Dial("tcp", backend)
	if err != nil {
		_, _ = fmt.Fprintf(errorStream, "dialing %s: %v", backend, err)
		_ = data.Reset()
		return
	}
	splice(data, c.(*net.TCPConn))
}

// splice copies both ways between a stream and a TCP connection, passing
// half-closes along, and returns when both directions are done.
func splice(s httpstream.Stream, c *net.TCPConn) {
	defer c.Close()
	done := make(chan struct{})
	go func() { // ends when the stream's peer half-closes or the stream is reset
		_, _ = io.Copy(c, s)
		_ = c.CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(s, c)
	_ = s.Close()
	<-done
}

// portForwarder is the client side: each local connection becomes a stream
// pair on conn.
type portForwarder struct {
	conn   httpstream.Connection
	mu     sync.Mutex // guards nextID
	nextID int
}

func (f *portForwarder) forward(local *net.TCPConn, port int) error {
	f.mu.Lock()
	f.nextID++
	id := strconv.Itoa(f.nextID)
	f.mu.Unlock()

	headers := http.Header{"Port": {strconv.Itoa(port)}, "Requestid": {id}}
	headers.Set("Streamtype", "error")
	errorStream, err := f.conn.CreateStream(headers.Clone())
	if err != nil {
		return err
	}
	_ = errorStream.Close() // the client never writes to it
	headers.Set("Streamtype", "data")
	data, err := f.conn.CreateStream(headers)
	if err != nil {
		return err
	}
	splice(data, local)
	if msg, _ := io.ReadAll(errorStream); len(msg) > 0 {
		return errors.New(string(msg))
	}
	return nil
}

// Port forwarding: every connection to a local port travels to the server
// as a pair of streams on one upgraded connection.
func Example_portForward() {
	// The service the server forwards to: it upper-cases what it reads.
	backend, _ := net.Listen("tcp", "127.0.0.1:0")
	var services sync.WaitGroup
	defer func() {
		_ = backend.Close()
		services.Wait()
	}()
	services.Add(1)
	go func() { // ends when the listener closes
		defer services.Done()
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			in, _ := io.ReadAll(c)
			_, _ = c.Write(bytes.ToUpper(in))
			_ = c.Close()
		}
	}()

	srv := httptest.NewServer(portForwardHandler(backend.Addr().String()))
	defer srv.Close()

	rt, err := upgrade.NewRoundTripper(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/portforward", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	// The local end, as kubectl port-forward opens it.
	local, _ := net.Listen("tcp", "127.0.0.1:0")
	forwarder := &portForwarder{conn: conn}
	var forwards sync.WaitGroup
	defer func() {
		_ = local.Close()
		forwards.Wait()
	}()
	forwards.Add(1)
	go func() { // ends when the local listener closes
		defer forwards.Done()
		for {
			c, err := local.Accept()
			if err != nil {
				return
			}
			forwards.Add(1)
			go func() { // ends when the forwarded connection does
				defer forwards.Done()
				if err := forwarder.forward(c.(*net.TCPConn), 8080); err != nil {
					fmt.Println("forwarding:", err)
				}
			}()
		}
	}()

	// Two connections to the local port, forwarded one after the other.
	for _, msg := range []string{"first connection", "second connection"} {
		c, err := net.Dial("tcp", local.Addr().String())
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = io.WriteString(c, msg)
		_ = c.(*net.TCPConn).CloseWrite()
		reply, _ := io.ReadAll(c)
		_ = c.Close()
		fmt.Println(string(reply))
	}

	// Output:
	// FIRST CONNECTION
	// SECOND CONNECTION
}
