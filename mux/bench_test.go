package mux

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (net.Conn, net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		tb.Fatal(r.err)
	}
	return a, r.c
}

// bulk sends n writes of size octets from w to r and returns the elapsed time.
func bulk(tb testing.TB, w io.Writer, r io.Reader, n, size int) time.Duration {
	buf := make([]byte, size)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		for range n {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	rbuf := make([]byte, size)
	if _, err := io.ReadFull(r, make([]byte, 0)); err != nil {
		tb.Fatal(err)
	}
	total := n * size
	for got := 0; got < total; {
		k, err := r.Read(rbuf)
		if err != nil {
			tb.Fatal(err)
		}
		got += k
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

func BenchmarkBulk(b *testing.B) {
	const size = 32 << 10
	ta, tb := tcpPair(b)
	defer ta.Close()
	defer tb.Close()

	ca, cb := tcpPair(b)
	accepted := make(chan httpstream.Stream, 1)
	srv, _ := Server(cb, func(st httpstream.Stream, _ <-chan struct{}) error { accepted <- st; return nil }, nil)
	cli, _ := Client(ca, nil, nil)
	defer cli.Close()
	defer srv.Close()
	st, err := cli.OpenStream(b.Context(), http.Header{})
	if err != nil {
		b.Fatal(err)
	}
	peer := <-accepted
	bulk(b, st, peer, 64, size) // warm up windows and pools

	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	muxTime := bulk(b, st, peer, b.N, size)
	b.StopTimer()
	tcpTime := bulk(b, ta, tb, b.N, size)
	b.ReportMetric(float64(tcpTime)/float64(muxTime), "x-tcp")
}
