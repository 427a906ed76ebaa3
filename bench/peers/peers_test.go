package main

import (
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/httpstream-go/httpstream/bench/scenario"
)

// tiny sizes every scenario down to a smoke test.
func tiny() scenario.Options {
	return scenario.Options{
		BulkBytes:   4 << 20,
		Streams:     4,
		EchoRounds:  50,
		Interactive: 50 * time.Millisecond,
		Opens:       50,
		IdleStreams: 20,
		HOLBytes:    16 << 20, // past smux's 4 MiB session buffer
		Timeout:     2 * time.Second,
		WANDuration: 400 * time.Millisecond,
		WANWarmup:   100 * time.Millisecond,
	}
}

// wantHOL says which transports have per-stream flow control.
var wantHOL = map[string]bool{"httpstream": true, "httpstream-ws": true, "yamux": true, "tcp": true, "smux": false, "spdy": false}

func TestEveryTransportRunsEveryScenario(t *testing.T) {
	for _, tr := range allTransports() {
		t.Run(tr.Name(), func(t *testing.T) {
			for _, s := range scenario.All {
				res := scenario.RunOne(s, tr, tiny())
				if errors.Is(res.Err, scenario.ErrUnsupported) && s.WAN {
					t.Logf("%s: %v", s.Name, res.Err)
					continue
				}
				if res.Err != nil {
					t.Errorf("%s: %v", s.Name, res.Err)
					continue
				}
				if s.Name == "hol" {
					if got := res.Metrics["pass"] == 1; got != wantHOL[tr.Name()] {
						t.Errorf("hol pass = %v, want %v", got, wantHOL[tr.Name()])
					}
				}
			}
		})
	}
}

// A failed hol run leaves no goroutines behind once the pair is closed:
// the SPDY pair's Close must unblock the writer stuck on the full socket
// and the frame worker stuck on the unread stream.
func TestFailedHOLLeavesNoGoroutines(t *testing.T) {
	hol, _ := scenario.Lookup("hol")
	for _, tr := range []scenario.Transport{SPDY{}, Smux{}} {
		t.Run(tr.Name(), func(t *testing.T) {
			before := runtime.NumGoroutine()
			for range 3 {
				if res := scenario.RunOne(hol, tr, tiny()); res.Err != nil || res.Metrics["pass"] != 0 {
					t.Fatalf("hol = %v, %v; want a bounded FAIL", res.Metrics, res.Err)
				}
			}
			// The goroutines end shortly after Close returns, not during it.
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // polling the goroutine count, bounded above
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

func TestSPDYDeadlineEndsBlockedRead(t *testing.T) {
	p, err := SPDY{}.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	accepted := make(chan scenario.Stream, 1)
	go func() {
		s, _ := p.Accept()
		accepted <- s
	}()
	c, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write after deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	// The peer sees the reset as the end of the stream.
	s.SetDeadline(time.Now().Add(time.Second))
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer Read after reset = %v, want io.EOF", err)
	}
}

func TestSPDYCloseHalfCloses(t *testing.T) {
	p, err := SPDY{}.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	accepted := make(chan scenario.Stream, 1)
	go func() {
		s, _ := p.Accept()
		accepted <- s
	}()
	c, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "ping" {
		t.Fatalf("server read %q, %v; want ping, EOF", got, err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err = io.ReadAll(c)
	if err != nil || string(got) != "pong" {
		t.Fatalf("client read %q, %v after its own Close; want pong, EOF", got, err)
	}
}

func TestFlagsAreCheckedBeforeRunning(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		wantErr     bool
		wantTimeout time.Duration
		wantTrs     int
	}{
		{name: "the defaults", wantTimeout: defaultTimeout, wantTrs: len(allTransports())},
		{name: "-quick has its own bound", args: []string{"-quick"}, wantTimeout: quickTimeout, wantTrs: len(allTransports())},
		{name: "a bound that is set", args: []string{"-timeout", "20s"}, wantTimeout: 20 * time.Second, wantTrs: len(allTransports())},
		{name: "some transports, and tcp", args: []string{"-transports", "yamux"}, wantTimeout: defaultTimeout, wantTrs: 2},
		{name: "a negative bound", args: []string{"-timeout", "-1s"}, wantErr: true},
		{name: "a bound too short for hol to pass", args: []string{"-quick", "-timeout", "500ms"}, wantErr: true},
		{name: "an unknown transport", args: []string{"-transports", "quic"}, wantErr: true},
		{name: "-reps 0", args: []string{"-reps", "0"}, wantErr: true},
		{name: "a stray argument", args: []string{"-quick", "yamux"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, trs, err := parseArgs(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseArgs(%q) = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if cmd.Options.Timeout != tc.wantTimeout || len(trs) != tc.wantTrs {
				t.Errorf("timeout %s, %d transports; want %s, %d", cmd.Options.Timeout, len(trs), tc.wantTimeout, tc.wantTrs)
			}
		})
	}
}
