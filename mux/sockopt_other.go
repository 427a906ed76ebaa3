//go:build !linux

package mux

import "net"

// limitUnsent does nothing where TCP_NOTSENT_LOWAT is not wired up; the
// session still works, with more queueing under mixed loads.
func limitUnsent(net.Conn, int) {}
