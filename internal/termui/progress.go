// Package termui draws scan progress on stderr: one live line on a
// terminal, and a line every few seconds (or on every stage change) when
// stderr is a file or a CI log.
package termui

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/vigilhq/vigil/scanner"
)

// Progress renders scanner events. Its zero value is not usable; use New.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	width    int
	last     time.Time
	lastKey  string
	start    time.Time
	drawn    bool
	interval time.Duration
}

// New returns a renderer writing to w; live redrawing is used when w is a
// terminal.
func New(w io.Writer) *Progress {
	p := &Progress{w: w, start: time.Now(), interval: 10 * time.Second}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		if wd, _, err := term.GetSize(int(f.Fd())); err == nil {
			p.width = wd
		}
	}
	return p
}

// Event renders one progress event.
func (p *Progress) Event(e scanner.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := format(e, time.Since(p.start))
	if p.tty {
		if p.width > 0 && len(line) > p.width-1 {
			line = line[:p.width-1]
		}
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	key := e.Location + "/" + e.Check
	if key == p.lastKey && time.Since(p.last) < p.interval && !(e.Total > 0 && e.Done == e.Total) {
		return
	}
	p.lastKey, p.last = key, time.Now()
	fmt.Fprintln(p.w, line)
}

// Println prints a message line, keeping the live line intact.
func (p *Progress) Println(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintln(p.w, msg)
}

// Done clears the live line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func format(e scanner.Event, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", e.Location, e.Check)
	switch {
	case e.Check == "nmap" && e.Detail != "":
		fmt.Fprintf(&b, ": %s", e.Detail)
		if e.Done > 0 && e.Total == 0 {
			fmt.Fprintf(&b, ", %d hosts done", e.Done)
		}
	case e.Total > 0:
		fmt.Fprintf(&b, ": %d/%d done", e.Done, e.Total)
		if e.Detail != "" {
			fmt.Fprintf(&b, " (%s)", e.Detail)
		}
	case e.Detail != "":
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	fmt.Fprintf(&b, "  %s", elapsed.Round(time.Second))
	return b.String()
}
