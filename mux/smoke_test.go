package mux

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/httpstream-go/httpstream"
)

func TestSmoke(t *testing.T) {
	c1, c2 := net.Pipe()
	got := make(chan httpstream.Stream, 1)
	srv, err := Server(c2, func(st httpstream.Stream, _ <-chan struct{}) error { got <- st; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Client(c1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cli.CreateStream(http.Header{"A": {"b"}})
	if err != nil {
		t.Fatal(err)
	}
	ss := <-got
	go func() { io.Copy(ss, ss); ss.Close() }()
	msg := bytes.Repeat([]byte("hello"), 100000)
	go func() { st.Write(msg); st.Close() }()
	back, err := io.ReadAll(st)
	if err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("%v %d", err, len(back))
	}
	cli.Close()
	srv.Close()
}
