package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// progress counts what an import has done and shows it: on a terminal as
// one line redrawn a few times a second, elsewhere (CI, pipes, files) as a
// plain line every Interval. Notes printed through it (Notef) never tangle
// with the redrawn line.
type progress struct {
	// W receives the output; TTY says it is a terminal (see isTerminal).
	W   io.Writer
	TTY bool
	// Interval is how often a log line is written when not on a terminal.
	Interval time.Duration

	mu         sync.Mutex
	start      time.Time
	filesTotal int
	filesDone  int
	bytesTotal int64
	bytesDone  int64
	resources  int64
	failures   int64
	samples    []progressSample // recent counts, for the rates
	drawn      bool             // the terminal line is on screen
	running    bool             // between Open and Close
	quit       chan struct{}
	wg         sync.WaitGroup
}

type progressSample struct {
	t         time.Time
	resources int64
	bytes     int64
}

// ttyRedraw is how often the terminal line is redrawn.
const ttyRedraw = 250 * time.Millisecond

// rateWindow is how far back the rates look.
const rateWindow = 5 * time.Second

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Open starts showing progress towards files and bytes in total.
func (p *progress) Open(files int, bytes int64) {
	p.mu.Lock()
	p.start = time.Now()
	p.filesTotal, p.bytesTotal = files, bytes
	p.samples = []progressSample{{t: p.start}}
	p.running = true
	p.mu.Unlock()
	every := p.Interval
	if p.TTY {
		every = ttyRedraw
	}
	p.quit = make(chan struct{})
	p.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
				p.mu.Lock()
				p.show()
				p.mu.Unlock()
			}
		}
	})
}

// Close stops the display and clears the terminal line.
func (p *progress) Close() {
	if p.quit == nil {
		return
	}
	close(p.quit)
	p.wg.Wait()
	p.quit = nil
	p.mu.Lock()
	p.running = false
	p.clear()
	p.mu.Unlock()
}

// Notef prints a line of its own.
func (p *progress) Notef(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.W, format+"\n", args...)
	if p.TTY && p.running {
		p.draw()
	}
}

// Add counts resources loaded, failures and bytes of input done.
func (p *progress) Add(resources, failures, bytes int64) {
	p.mu.Lock()
	p.resources += resources
	p.failures += failures
	p.bytesDone += bytes
	p.mu.Unlock()
}

// FileDone counts a file finished, loaded or not.
func (p *progress) FileDone() {
	p.mu.Lock()
	p.filesDone++
	p.mu.Unlock()
}

// show draws the terminal line or writes a log line. Call with mu held.
func (p *progress) show() {
	if p.TTY {
		p.draw()
		return
	}
	fmt.Fprintf(p.W, "import: %s\n", p.line(time.Now()))
}

func (p *progress) draw() {
	fmt.Fprintf(p.W, "\r%s\x1b[K", p.line(time.Now()))
	p.drawn = true
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.W, "\r\x1b[K")
		p.drawn = false
	}
}

// line is the progress as one line, e.g.
// "files 12/618, 3,456 resources, 1,234/s, 2 failures, 1m5s elapsed, ETA 2m10s".
// Call with mu held.
func (p *progress) line(now time.Time) string {
	cur := progressSample{t: now, resources: p.resources, bytes: p.bytesDone}
	// Keep the samples of the last rateWindow (and one before it).
	cut := 0
	for cut+1 < len(p.samples) && now.Sub(p.samples[cut+1].t) >= rateWindow {
		cut++
	}
	p.samples = append(p.samples[cut:], cur)
	old := p.samples[0]
	dt := now.Sub(old.t).Seconds()
	var rate, byteRate float64
	if dt > 0 {
		rate = float64(cur.resources-old.resources) / dt
		byteRate = float64(cur.bytes-old.bytes) / dt
	}
	eta := "?"
	if left := p.bytesTotal - p.bytesDone; left <= 0 {
		eta = "0s"
	} else if byteRate > 0 {
		eta = roundDuration(time.Duration(float64(left) / byteRate * float64(time.Second))).String()
	}
	return fmt.Sprintf("files %d/%d, %s resources, %s/s, %s, %s elapsed, ETA %s",
		p.filesDone, p.filesTotal, commas(p.resources), commas(int64(rate+0.5)),
		plural(p.failures, "failure"), roundDuration(now.Sub(p.start)), eta)
}

// roundDuration rounds to seconds (to tenths under ten seconds, to
// milliseconds under one).
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// commas writes n with thousands separators: 1234567 → 1,234,567.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// plural is "1 failure", "2 failures".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return commas(n) + " " + noun + "s"
}
