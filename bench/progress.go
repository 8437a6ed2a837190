package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress is the live status line on stderr: rewritten in place every
// second on a terminal, a new line every five seconds otherwise. A nil
// *progress (no writer) does nothing.
type progress struct {
	w      io.Writer
	name   string
	tty    bool
	start  time.Time
	mu     sync.Mutex
	status func() string // while measuring; nil: the setup text
	setup  string
	last   int // length of the latest line on a terminal
	stop   chan struct{}
	done   chan struct{}
}

func newProgress(w io.Writer, name string) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, name: name, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	every := 5 * time.Second
	if p.tty {
		every = time.Second
	}
	go p.run(every)
	return p
}

func (p *progress) run(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.print(false)
		}
	}
}

// setf sets the text shown during setup.
func (p *progress) setf(format string, a ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.setup = fmt.Sprintf(format, a...)
	p.mu.Unlock()
}

// measure switches the line to the running figures.
func (p *progress) measure(status func() string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.status = status
	p.start = time.Now()
	p.mu.Unlock()
}

func (p *progress) print(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := p.setup
	if p.status != nil {
		text = p.status()
	}
	line := fmt.Sprintf("bench %s %5.1fs  %s", p.name, time.Since(p.start).Seconds(), text)
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	padding := max(p.last-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%*s", line, padding, "")
	p.last = len(line)
	if final {
		fmt.Fprintln(p.w)
	}
}

// close prints the line a last time and stops.
func (p *progress) close() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.print(true)
}
