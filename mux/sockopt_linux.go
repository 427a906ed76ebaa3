//go:build linux

package mux

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT from linux/tcp.h.
const tcpNotSentLowat = 25

// limitUnsent caps the data a TCP connection keeps queued but not yet sent
// (TCP_NOTSENT_LOWAT). Without it the kernel queues megabytes of one
// stream's bulk data, and a small frame of another stream, or a PING
// answer, waits behind all of it: the head-of-line blocking that
// per-stream flow control removed comes back one layer down.
func limitUnsent(c net.Conn, n int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, n)
	})
}
