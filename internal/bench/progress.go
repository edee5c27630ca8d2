package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/crmsync/crmsync/internal/outbound"
	"github.com/crmsync/crmsync/internal/overview"
)

// progress shows how a long bench run is going, on stderr: one line
// rewritten in place on a terminal, and otherwise (a CI log, a file) a line
// at most every few seconds, so a captured log stays readable.
type progress struct {
	w        io.Writer
	terminal bool
	every    time.Duration
	last     time.Time
	open     bool // a terminal line is being rewritten
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, every: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			p.terminal = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return p
}

// Update shows the current state.
func (p *progress) Update(format string, args ...any) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r"+format+"\033[K", args...)
		p.open = true
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// Done shows the final state and ends the line.
func (p *progress) Done(format string, args ...any) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r"+format+"\033[K\n", args...)
	} else {
		fmt.Fprintf(p.w, format+"\n", args...)
	}
	p.open, p.last = false, time.Time{}
}

// Line prints a line of its own.
func (p *progress) Line(format string, args ...any) {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// progressLine says how a drain is going: a bar and the records done of
// the total, the rate, the ETA, and the queue. The bar is drawn here
// rather than by a progress-bar module (schollz/progressbar, mpb): the
// printer above already tells a terminal from a log, and the figures
// come from the overview, not from counting in the bench.
//
//	bench: [######..............] 30000/100000 records (30%), 2400/min, ETA 29m10s; 70000 changes queued, 0 failed
func progressLine(p overview.Progress, d outbound.Depth, now time.Time) string {
	const width = 20
	total := p.Total()
	frac := 0.0
	if total > 0 {
		frac = float64(p.Done) / float64(total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	eta := "ETA unknown"
	if !p.ETA.IsZero() {
		eta = "ETA " + max(p.ETA.Sub(now), 0).Round(time.Second).String()
	}
	rate := fmt.Sprintf("%.0f/min", p.PerMinute)
	if p.PerMinute > 0 && p.PerMinute < 10 {
		rate = fmt.Sprintf("%.1f/min", p.PerMinute)
	}
	return fmt.Sprintf("bench: [%s] %d/%d records (%.0f%%), %s, %s; %d changes queued, %d failed",
		bar, p.Done, total, 100*frac, rate, eta, d.Queued, d.Failed)
}
