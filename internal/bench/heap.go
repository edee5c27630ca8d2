package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"sync/atomic"
	"time"
)

// liveHeapSample is the runtime metric of the heap the last GC kept.
const liveHeapSample = "/gc/heap/live:bytes"

// heapWatch samples the live heap (what the last GC kept) every interval
// and keeps its peak. With a path, each time the peak grows 5 % past the
// last one written it writes a heap profile there (in-use objects as of
// that GC): the profile of the run's peak, which the profile written at
// the end cannot show.
type heapWatch struct {
	peak atomic.Uint64
	stop context.CancelFunc
	done chan struct{}
}

func watchHeap(stderr io.Writer, path string, interval time.Duration) *heapWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &heapWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		s := []metrics.Sample{{Name: liveHeapSample}}
		var written uint64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > w.peak.Load() {
				w.peak.Store(v)
				if path != "" && float64(v) > 1.05*float64(written) {
					if err := writeProfile(path, "heap"); err != nil {
						fmt.Fprintf(stderr, "bench: peak heap profile: %v\n", err)
						path = ""
					}
					written = v
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// PeakMB is the largest live heap seen so far, in MB.
func (w *heapWatch) PeakMB() float64 { return float64(w.peak.Load()) / (1 << 20) }

// Close stops the sampling.
func (w *heapWatch) Close() {
	w.stop()
	<-w.done
}

// writeProfile writes the named runtime profile to path.
func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = pprof.Lookup(name).WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
