package scenario

import (
	"testing"
	"time"
)

// TestScenariosRunOnEveryTransport runs each scenario once, very small, on
// both transports of this module: the report's code paths all work.
func TestScenariosRunOnEveryTransport(t *testing.T) {
	o := Options{
		BulkBytes: 4 << 20, Streams: 4, EchoRounds: 50, Interactive: 50 * time.Millisecond,
		Opens: 50, IdleStreams: 50, HOLBytes: 2 << 20, Timeout: 20 * time.Second,
		WANDuration: 400 * time.Millisecond, WANWarmup: 100 * time.Millisecond,
	}
	for _, tr := range []Transport{TCP{}, Mux{}} {
		for _, s := range All {
			t.Run(tr.Name()+"/"+s.Name, func(t *testing.T) {
				r := RunOne(s, tr, o)
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				for _, m := range s.Metrics {
					if _, ok := r.Metrics[m.Name]; !ok && m.Name != "stack-B/stream" {
						t.Fatalf("no %q metric in %v", m.Name, r.Metrics)
					}
				}
				if s.Name == "hol" && r.Metrics["pass"] != 1 {
					t.Fatalf("%s fails head-of-line: %v", tr.Name(), r.Metrics)
				}
				t.Log(r.Metrics)
			})
		}
	}
}
