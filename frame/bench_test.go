package frame

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkAppendDataHeader is the writer's cost per DATA frame: it sends
// the payload from the caller's slice and encodes only the header.
func BenchmarkAppendDataHeader(b *testing.B) {
	buf := make([]byte, 0, HeaderSize)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrameHeader(buf[:0], FrameHeader{Length: 32 << 10, Type: FrameData, StreamID: 1})
	}
}

func BenchmarkAppendData(b *testing.B) {
	for _, size := range []int{64, 32 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			payload := make([]byte, size)
			buf := make([]byte, 0, HeaderSize+size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendData(buf[:0], 1, 0, payload)
			}
		})
	}
}

func BenchmarkReadData(b *testing.B) {
	for _, size := range []int{64, 32 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			// Enough frames in a row that the buffer sees realistic batches.
			var stream []byte
			for len(stream) < 256<<10 {
				stream = AppendData(stream, 1, 0, make([]byte, size))
			}
			r := NewReader(&loopReader{data: stream}, Limits{MaxFrameSize: 64 << 10})
			own := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadFrameHeader(); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(r, own); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadFrameData(b *testing.B) {
	size := 32 << 10
	r := NewReader(&loopReader{data: AppendData(nil, 1, 0, make([]byte, size))}, Limits{MaxFrameSize: 64 << 10})
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

var benchHeaders = http.Header{
	"Streamtype":                {"stdout"},
	"X-Stream-Protocol-Version": {"v4.channel.k8s.io"},
	"Port":                      {"8080"},
	"Requestid":                 {"0"},
}

func BenchmarkAppendHeaderBlock(b *testing.B) {
	buf := make([]byte, 0, 256)
	enc, _ := AppendHeaderBlock(nil, benchHeaders)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendHeaderBlock(buf[:0], benchHeaders); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHeaderBlock(b *testing.B) {
	enc, _ := AppendHeaderBlock(nil, benchHeaders)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeHeaderBlock(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
