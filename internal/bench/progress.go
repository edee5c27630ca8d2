package bench

import (
	"fmt"
	"io"
	"os"
	"time"
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
