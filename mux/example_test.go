package mux_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

// Two sessions over any reliable connection (here net.Pipe; after an HTTP
// upgrade, the hijacked connection): the client opens a stream with headers,
// the server's handler accepts it and echoes it back.
func Example() {
	clientConn, serverConn := net.Pipe()

	server, err := mux.Server(serverConn, func(s httpstream.Stream, replySent <-chan struct{}) error {
		// The handler runs once per stream, in order: hand the stream to
		// a goroutine and return, which accepts it.
		go func() {
			io.Copy(s, s) // echo until the client half-closes
			s.Close()
		}()
		return nil
	}, nil)
	if err != nil {
		panic(err)
	}
	defer server.Close()

	client, err := mux.Client(clientConn, nil, nil) // nil handler: the server may not open streams
	if err != nil {
		panic(err)
	}
	defer client.Close()

	s, err := client.OpenStream(context.Background(), http.Header{"Streamtype": {"echo"}})
	if err != nil {
		panic(err)
	}
	fmt.Fprint(s, "hello")
	s.Close() // half-close: the server reads io.EOF, and we can still read
	reply, _ := io.ReadAll(s)
	fmt.Printf("%s, on stream %d\n", reply, s.Identifier())
	// Output: hello, on stream 1
}

// A handler that refuses a stream: the opener gets an error that matches
// mux.ErrStreamRefused and carries the handler's reason.
func ExampleErrStreamRefused() {
	clientConn, serverConn := net.Pipe()
	server, _ := mux.Server(serverConn, func(s httpstream.Stream, _ <-chan struct{}) error {
		return fmt.Errorf("no stream type %q here", s.Headers().Get("Streamtype"))
	}, nil)
	defer server.Close()
	client, _ := mux.Client(clientConn, nil, nil)
	defer client.Close()

	_, err := client.CreateStream(http.Header{"Streamtype": {"resize"}})
	fmt.Println(err)
	// Output: httpstream: stream 1 refused by the peer (REFUSED): "no stream type \"resize\" here"
}

// Shutdown stops new streams, lets the open ones finish, then closes.
func ExampleSession_Shutdown() {
	clientConn, serverConn := net.Pipe()
	done := make(chan struct{})
	server, _ := mux.Server(serverConn, func(s httpstream.Stream, _ <-chan struct{}) error {
		go func() {
			defer close(done)
			b, _ := io.ReadAll(s)
			fmt.Printf("server read %q\n", b)
			s.Close()
		}()
		return nil
	}, nil)
	client, _ := mux.Client(clientConn, nil, nil)
	defer client.Close()

	s, _ := client.OpenStream(context.Background(), nil)
	go func() {
		s.Write([]byte("last words"))
		s.Close()
		io.ReadAll(s) // until the server closes its side
	}()
	err := server.Shutdown(context.Background()) // waits for the stream to end
	<-done
	fmt.Println("shutdown:", err)
	// Output:
	// server read "last words"
	// shutdown: <nil>
}
