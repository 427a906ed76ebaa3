package frame

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Limits bounds what a Reader accepts. They are the receiver's own limits,
// the values it advertises in SETTINGS (SPEC 4.9).
type Limits struct {
	// MaxFrameSize bounds DATA and unknown-type payloads. 0 means
	// DefaultMaxFrameSize.
	MaxFrameSize uint32
	// MaxHeaderBytes bounds OPEN payloads. 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes uint32
}

func (l Limits) withDefaults() Limits {
	if l.MaxFrameSize == 0 {
		l.MaxFrameSize = DefaultMaxFrameSize
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// ReaderBufferSize is the size of the buffer a Reader puts in front of its
// source. It is small on purpose: a DATA payload beyond what the buffer holds
// is read straight from the source into the caller's slice, so a large
// payload is copied once, not twice; and 4 KiB still takes dozens of small
// frames in one read.
const ReaderBufferSize = 4 << 10

// Reader decodes frames from a byte stream. It is not safe for concurrent
// use: a session has one reader goroutine.
//
// There are two ways to read. ReadFrame reads and decodes a whole frame. A
// caller that wants DATA payloads in its own buffers calls ReadFrameHeader,
// then either reads the payload with Read (which ends with io.EOF at the end
// of the payload) or calls ReadPayload to decode it; a payload left unread is
// skipped by the next ReadFrameHeader.
type Reader struct {
	br        *bufio.Reader
	lim       Limits
	hdr       FrameHeader
	remaining uint32 // payload octets of hdr not read yet
	buf       []byte // payload buffer for ReadPayload, grown up to the limits
	frame     Frame  // reused by ReadFrame and ReadPayload
}

// NewReader returns a Reader of r with limits lim (zero fields take their
// defaults). If r is already a *bufio.Reader of at least ReaderBufferSize it
// is used as it is, so that octets it holds are not lost.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, ReaderBufferSize), lim: lim.withDefaults()}
}

// Limits returns the limits the Reader enforces.
func (r *Reader) Limits() Limits { return r.lim }

// ReadPreface reads the peer's 8-octet preface (SPEC 2.2). A mismatch is an
// error wrapping ErrBadPreface or ErrVersionMismatch that quotes what came.
func (r *Reader) ReadPreface() error {
	var got [len(Preface)]byte
	n, err := io.ReadFull(r.br, got[:])
	if err != nil {
		if n == 0 && err == io.EOF {
			return fmt.Errorf("%w: the connection closed before any octet arrived", ErrBadPreface)
		}
		if !bytes.Equal(got[:n], []byte(Preface[:n])) {
			return fmt.Errorf("%w: got %q then %v", ErrBadPreface, got[:n], err)
		}
		return fmt.Errorf("reading the httpstream preface: %w", err)
	}
	if string(got[:7]) != Preface[:7] {
		hint := ""
		if bytes.HasPrefix(got[:], []byte("HTTP/")) {
			hint = " (an HTTP response: the server did not upgrade the connection)"
		}
		return fmt.Errorf("%w: got %q%s", ErrBadPreface, got[:], hint)
	}
	if got[7] != Version {
		return fmt.Errorf("%w: the peer speaks version %d, this side version %d (upgrade token %s)", ErrVersionMismatch, got[7], Version, UpgradeToken)
	}
	return nil
}

// ReadFrameHeader skips whatever is left of the previous frame's payload,
// then reads and checks the next frame header (SPEC 3.1, 3.2, 10.1). A clean
// end of the stream between frames is io.EOF; an end inside a frame is
// io.ErrUnexpectedEOF. A header that breaks a length or stream-ID rule is a
// *SessionError, returned before any of the payload is read.
func (r *Reader) ReadFrameHeader() (FrameHeader, error) {
	if r.remaining > 0 {
		if _, err := r.br.Discard(int(r.remaining)); err != nil {
			return FrameHeader{}, noEOF(err)
		}
		r.remaining = 0
	}
	b, err := r.br.Peek(HeaderSize)
	if err != nil {
		if len(b) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return FrameHeader{}, err
	}
	h := FrameHeader{
		Length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:     FrameType(b[3]),
		Flags:    Flags(b[4]),
		StreamID: uint32(b[5])<<24 | uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8]),
	}
	r.br.Discard(HeaderSize) // cannot fail: Peek returned that many
	if err := checkHeader(h, r.lim); err != nil {
		return h, err
	}
	r.hdr, r.remaining = h, h.Length
	return h, nil
}

// Read reads from the payload of the frame whose header was read last, and
// returns io.EOF at its end. It lets a caller put DATA payloads straight into
// its own buffers.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if uint32(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.br.Read(p)
	r.remaining -= uint32(n)
	if err != nil {
		err = noEOF(err)
	}
	return n, err
}

// ReadPayload reads the rest of the payload of the frame whose header was
// read last and decodes it. The returned Frame, and the slices it holds, are
// valid until the next read. A payload that breaks the SPEC is a
// *SessionError or, for a bad OPEN header block, a *StreamError (SPEC 4.2).
func (r *Reader) ReadPayload() (*Frame, error) {
	h := r.hdr
	if r.remaining != h.Length {
		return nil, errors.New("frame: ReadPayload after part of the payload was read")
	}
	// The length was checked against the limits in ReadFrameHeader, so this
	// allocation is bounded by them (SPEC 10.1).
	if uint32(cap(r.buf)) < h.Length {
		r.buf = make([]byte, h.Length)
	}
	p := r.buf[:h.Length]
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, noEOF(err)
	}
	f := &r.frame
	settings := f.Settings
	*f = Frame{FrameHeader: h, Settings: settings[:0]}
	if !h.Type.Known() {
		f.Data = p // SPEC 3.4: kept raw, for the caller to ignore
		return f, nil
	}
	if err := frameRules[h.Type].parse(f, p); err != nil {
		return f, err
	}
	return f, nil
}

// ReadFrame reads and decodes the next frame. The returned Frame, and the
// slices it holds, are valid until the next read.
func (r *Reader) ReadFrame() (*Frame, error) {
	if _, err := r.ReadFrameHeader(); err != nil {
		return nil, err
	}
	return r.ReadPayload()
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
