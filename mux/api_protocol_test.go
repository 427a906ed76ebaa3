package mux_test

// Black-box tests of a session facing a hand-written peer on the wire: a peer
// that breaks the protocol gets a GOAWAY whose code names the cause and the
// session closes with an error saying what was wrong; what the protocol allows
// (frames for closed streams, unknown frame types, PINGs) is tolerated; a peer
// that floods PINGs without reading the answers is cut off.

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/frame"
	"github.com/httpstream-go/httpstream/mux"
)

// A peer that breaks the protocol gets a GOAWAY with a reason, and the
// session closes with an error saying what was wrong. The peer here is a
// hand-written client on the other end of a net.Pipe.

func TestAPIAPeerThatBreaksTheProtocolGetsAGoAwayAndTheSessionCloses(t *testing.T) {
	const window = 512 // below MaxFrameSize (1024), so one DATA frame can overrun it
	mustOpen := func(id uint32, h http.Header) []byte {
		b, err := frame.AppendOpen(nil, id, h)
		if err != nil {
			panic(err)
		}
		return b
	}
	header := func(ft frame.FrameType, id uint32, payload []byte) []byte {
		b := frame.AppendFrameHeader(nil, frame.FrameHeader{Length: uint32(len(payload)), Type: ft, StreamID: id})
		return append(b, payload...)
	}
	tests := []struct {
		name string
		// openFirst makes the client open stream 1 and wait for its
		// ACCEPT before it sends bad.
		openFirst bool
		// settingsFirst false sends bad in place of the SETTINGS frame.
		noSettings bool
		bad        []byte
		wantCode   frame.ErrCode
	}{
		{name: "DATA past the stream's window is a FLOW_CONTROL_ERROR", openFirst: true,
			bad: frame.AppendData(nil, 1, 0, make([]byte, window+1)), wantCode: frame.CodeFlowControlError},
		{name: "DATA longer than MaxFrameSize is a FRAME_SIZE_ERROR", openFirst: true,
			bad: frame.AppendData(nil, 1, 0, make([]byte, 2048)), wantCode: frame.CodeFrameSizeError},
		{name: "DATA on a stream never opened is a PROTOCOL_ERROR",
			bad: frame.AppendData(nil, 5, 0, []byte("x")), wantCode: frame.CodeProtocolError},
		{name: "an OPEN with the server's parity is a PROTOCOL_ERROR",
			bad: mustOpen(2, nil), wantCode: frame.CodeProtocolError},
		{name: "an OPEN whose ID is not above the last one is a PROTOCOL_ERROR",
			bad: append(mustOpen(5, nil), mustOpen(3, nil)...), wantCode: frame.CodeProtocolError},
		{name: "an OPEN over MaxHeaderBytes is a FRAME_SIZE_ERROR",
			bad: mustOpen(1, http.Header{"Big": {strings.Repeat("x", 2048)}}), wantCode: frame.CodeFrameSizeError},
		{name: "a WINDOW_UPDATE on stream 0 is a PROTOCOL_ERROR",
			bad: header(frame.FrameWindowUpdate, 0, []byte{0, 0, 0, 1}), wantCode: frame.CodeProtocolError},
		{name: "a WINDOW_UPDATE past 2^31-1 is a FLOW_CONTROL_ERROR", openFirst: true,
			bad: frame.AppendWindowUpdate(nil, 1, frame.MaxWindow), wantCode: frame.CodeFlowControlError},
		{name: "a second SETTINGS frame is a PROTOCOL_ERROR",
			bad: frame.AppendSettings(nil), wantCode: frame.CodeProtocolError},
		{name: "a first frame other than SETTINGS is a PROTOCOL_ERROR", noSettings: true,
			bad: frame.AppendPing(nil, 0, [8]byte{1}), wantCode: frame.CodeProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, client := serverWithRawClient(t, httpstream.NoOpNewStreamHandler, &mux.Config{
					InitialStreamWindow: window,
					MaxStreamWindow:     window,
					MaxFrameSize:        1024,
					MaxHeaderBytes:      1024,
				})
				hello := []byte(frame.Preface)
				if !tt.noSettings {
					hello = frame.AppendSettings(hello)
				}
				client.write(hello)
				if !tt.noSettings {
					client.next(frame.FrameSettings, 0)
				}
				if tt.openFirst {
					client.write(mustOpen(1, nil))
					client.next(frame.FrameAccept, 1)
				}
				// The server may stop reading in the middle of the bad
				// frame, so this Write may fail; the GOAWAY tells.
				go client.conn.Write(tt.bad)
				goAway := client.next(frame.FrameGoAway, 0)
				if goAway.Code != tt.wantCode {
					t.Errorf("GOAWAY code %v, want %v (reason %q)", goAway.Code, tt.wantCode, goAway.Reason)
				}
				if goAway.Reason == "" {
					t.Error("the GOAWAY gives no reason")
				}
				recv(t, srv.CloseChan(), "the server to close")
				_, err := srv.Ping(context.Background())
				wantErrIs(t, err, mux.ErrSessionClosed, "Ping after a protocol error")
				if err != nil && err.Error() == mux.ErrSessionClosed.Error() {
					t.Errorf("the session's error %q does not say what was wrong", err)
				}
			})
		})
	}
}

// A peer that sends PINGs but never reads the answers cannot make the
// session queue without bound (SPEC 10.2: ENHANCE_YOUR_CALM when the
// answers are not read).

func TestAPIAPeerThatFloodsPingsWithoutReadingIsCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rawEnd, srvEnd := net.Pipe()
		srv, err := mux.Server(srvEnd, nil, &mux.Config{KeepAliveInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeSession(t, srv, "server") })
		t.Cleanup(func() { rawEnd.Close() })
		flood := frame.AppendSettings([]byte(frame.Preface))
		for i := range 2 * 4096 { // twice the cap SPEC 10.2 gives
			flood = frame.AppendPing(flood, 0, [8]byte{byte(i >> 8), byte(i)})
		}
		go rawEnd.Write(flood) // fails once the session hangs up
		// The session stops reading while its answers wait, and gives a
		// peer that does not read them 5 seconds (SPEC 10.2).
		synctest.Wait()
		time.Sleep(5 * time.Second)
		wantClosed(t, srv, "a session whose peer sent 8,192 PINGs (twice the cap of SPEC 10.2) and read none of the answers")
		_, err = srv.Ping(context.Background())
		wantErrIs(t, err, mux.ErrSessionClosed, "Ping after the flood")
	})
}

// Frames that were in flight when a stream closed are discarded (SPEC 6.4),
// unknown frame types are skipped (SPEC 3.4), and PINGs are answered whatever
// the session's own keepalive setting (SPEC 4.7): none of it ends the
// session.

func TestAPIASessionToleratesWhatTheProtocolAllows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		accepted := make(chan *mux.Stream, 1)
		srv, client := serverWithRawClient(t, acceptInto(accepted), &mux.Config{KeepAliveInterval: -1})
		hello := frame.AppendSettings([]byte(frame.Preface))
		// An unknown frame type, with undefined flags, on a stream that
		// was never opened.
		hello = frame.AppendFrameHeader(hello, frame.FrameHeader{Length: 10, Type: 0x42, Flags: 0xff, StreamID: 7})
		hello = append(hello, make([]byte, 10)...)
		client.writeOpen(hello, 1)
		client.next(frame.FrameAccept, 1)
		st := recv(t, accepted, "the server's handler")

		// The server resets stream 1 while the client, not knowing yet,
		// still sends on it.
		st.Reset()
		client.next(frame.FrameReset, 1)
		late := frame.AppendData(nil, 1, 0, []byte("in flight"))
		late = frame.AppendWindowUpdate(late, 1, 1000)
		late = frame.AppendReset(late, 1, frame.CodeCancel, "crossed")
		late = frame.AppendPing(late, 0, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
		client.write(late)
		for {
			ack := client.next(frame.FramePing, 0)
			if ack.PingData == [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
				break
			}
		}
		wantOpen(t, srv, "the server")
		client.writeOpen(nil, 3)
		client.next(frame.FrameAccept, 3)
		recv(t, accepted, "the server's handler for stream 3")
	})
}
