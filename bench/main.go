// Command bench prints a loopback throughput report. Until the engine's
// scenarios land it measures the frame codec alone: one bulk transfer of
// DATA frames over a TCP loopback connection, against the same bytes sent
// raw, in one run.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/httpstream-go/httpstream/frame"
)

func main() {
	total := flag.Int("mib", 512, "MiB to send in each transfer")
	size := flag.Int("write", 32<<10, "bytes per write (and DATA payload)")
	flag.Parse()
	raw, err := transfer(*total<<20, *size, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	framed, err := transfer(*total<<20, *size, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("%-22s %10s\n", "transfer", "MB/s")
	fmt.Printf("%-22s %10.0f\n", "raw TCP", raw)
	fmt.Printf("%-22s %10.0f  (%.2fx raw)\n", "DATA frames over TCP", framed, framed/raw)
}

// transfer sends total bytes over a loopback TCP connection and returns MB/s
// as the receiver saw it.
func transfer(total, size int, framed bool) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		payload := make([]byte, size)
		hdr := make([]byte, 0, frame.HeaderSize)
		bufs := make(net.Buffers, 0, 2)
		for sent := 0; sent < total; sent += size {
			if framed {
				hdr = frame.AppendFrameHeader(hdr[:0], frame.FrameHeader{Length: uint32(size), Type: frame.FrameData, StreamID: 1})
				bufs = append(bufs[:0], hdr, payload)
				_, err = bufs.WriteTo(c)
			} else {
				_, err = c.Write(payload)
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	c, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	start := time.Now()
	buf := make([]byte, size)
	got := 0
	if framed {
		r := frame.NewReader(c, frame.Limits{MaxFrameSize: uint32(size)})
		for got < total {
			if _, err := r.ReadFrameHeader(); err != nil {
				return 0, err
			}
			n, err := io.ReadFull(r, buf)
			if err != nil {
				return 0, err
			}
			got += n
		}
	} else {
		for got < total {
			n, err := c.Read(buf)
			if err != nil {
				return 0, err
			}
			got += n
		}
	}
	elapsed := time.Since(start)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(got) / elapsed.Seconds() / 1e6, nil
}
