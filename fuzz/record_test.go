package fuzz

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/httpstream-go/httpstream"
	"github.com/httpstream-go/httpstream/mux"
)

var record = flag.Bool("record", false, "rewrite testdata/fuzz/FuzzFrameReader/session-* from a real session")

// recorder is a net.Conn that keeps a copy of everything written to it.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.out.Bytes())
}

// TestRecordSessionSeeds records what both ends of a real session write
// during a normal exchange (opens with headers, data both ways, half-closes,
// a refusal, a reset, a ping, a graceful shutdown) and checks it against the
// committed seeds of FuzzFrameReader. With -record it rewrites them:
//
//	go test ./fuzz -run TestRecordSessionSeeds -record
func TestRecordSessionSeeds(t *testing.T) {
	a, b := net.Pipe()
	ca, cb := &recorder{Conn: a}, &recorder{Conn: b}
	handler := func(s httpstream.Stream, _ <-chan struct{}) error {
		if s.Headers().Get("Streamtype") == "refused" {
			return fmt.Errorf("no such stream type")
		}
		go func() {
			io.Copy(s, s)
			s.Close()
		}()
		return nil
	}
	cfg := &mux.Config{KeepAliveInterval: -1}
	server, err := mux.Server(cb, handler, cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := mux.Client(ca, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, h := range []http.Header{
		{"Streamtype": {"stdin"}, "X-Stream-Protocol-Version": {"v5.channel.k8s.io"}},
		{"Streamtype": {"stdout"}},
	} {
		s, err := client.OpenStream(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		msg := bytes.Repeat([]byte{byte('a' + i)}, 100*(i+1))
		s.Write(msg)
		s.Close()
		if got, _ := io.ReadAll(s); !bytes.Equal(got, msg) {
			t.Fatalf("echo of stream %d: %d octets", s.Identifier(), len(got))
		}
	}
	if _, err := client.CreateStream(http.Header{"Streamtype": {"refused"}}); err == nil {
		t.Fatal("the refused stream was accepted")
	}
	s, err := client.OpenStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("then reset"))
	s.Reset()
	if _, err := client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	server.Shutdown(ctx)
	client.Close()

	seeds := map[string][]byte{"session-client": ca.bytes(), "session-server": cb.bytes()}
	dir := filepath.Join("testdata", "fuzz", "FuzzFrameReader")
	for name, wire := range seeds {
		// The frame reader starts after the preface.
		body := wire[len("hstream\x01"):]
		file := filepath.Join(dir, name)
		content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(body)) + ")\n"
		if *record {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := os.Stat(file); err != nil {
			t.Fatalf("%v: record the seeds with -record", err)
		}
	}
}
