package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// progress shows the tenants' progress while they are provisioned, from
// the Provisioner's events. On a terminal it is a board that redraws in
// place (ANSI cursor movement, lines kept under 80 columns so that none
// wraps); elsewhere (a pipe, a file, a CI log) it prints one line per
// tenant per status change.
//
// Events arrive on the Provisioner's goroutines (Config.OnEvent must
// return quickly), so observe only updates the state under the mutex and
// queues lines; a goroutine of its own does the writing.
type progress struct {
	w     io.Writer
	tty   bool // redraw a board; else plain lines
	color bool // ANSI colours on the board
	now   func() time.Time
	start time.Time
	// interval is how often the board redraws.
	interval time.Duration

	mu      sync.Mutex
	order   []string // tenant IDs, in display order
	rows    map[string]*row
	pending []string // plain lines not yet written
	drawn   int      // board lines written by the last redraw
	frame   string   // the last board drawn, to skip identical redraws
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

// row is one tenant's state on the board.
type row struct {
	status    store.Status
	step      string
	stepIndex int // 0-based index of the running or last step
	steps     int // number of steps, once StepsFunc has run
	started   time.Time
	ended     time.Time // zero while the tenant is not settled
	err       string
}

// progressOptions configure newProgress; now nil means time.Now.
type progressOptions struct {
	tty, color bool
	now        func() time.Time
	// interval is how often the board redraws (elapsed times move on);
	// 0 means 100ms.
	interval time.Duration
}

// newProgress returns a progress for the tenants ids, writing to w from
// a goroutine of its own until stop.
func newProgress(w io.Writer, ids []string, o progressOptions) *progress {
	p := makeProgress(w, ids, o)
	go p.loop()
	return p
}

// makeProgress is newProgress without the writing goroutine: nothing is
// written but by flush.
func makeProgress(w io.Writer, ids []string, o progressOptions) *progress {
	if o.now == nil {
		o.now = time.Now
	}
	if o.interval == 0 {
		o.interval = 100 * time.Millisecond
	}
	p := &progress{
		w: w, tty: o.tty, color: o.color && o.tty, now: o.now, interval: o.interval,
		order: append([]string(nil), ids...),
		rows:  make(map[string]*row, len(ids)),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}), stopped: make(chan struct{}),
	}
	p.start = p.now()
	for _, id := range ids {
		p.rows[id] = &row{started: p.start}
	}
	return p
}

// begin marks when work on a tenant started (its clock on the board).
func (p *progress) begin(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.rows[id]; ok {
		r.started = p.now()
	}
}

// took returns how long tenant id took from begin to the status change
// that settled it, and false while it is not settled.
func (p *progress) took(id string) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rows[id]
	if !ok || r.ended.IsZero() {
		return 0, false
	}
	return r.ended.Sub(r.started), true
}

// setSteps records how many injection steps a tenant has.
func (p *progress) setSteps(id string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.rows[id]; ok {
		r.steps = n
	}
}

// observe is the Provisioner's Config.OnEvent.
func (p *progress) observe(e provision.Event) {
	p.mu.Lock()
	r, ok := p.rows[e.Tenant]
	if !ok {
		p.mu.Unlock()
		return
	}
	switch {
	case e.Step != "":
		r.step, r.stepIndex = e.Step, e.StepIndex
	case e.To != "" && e.To != r.status:
		r.status = e.To
		if e.Err != nil {
			r.err = e.Err.Error()
		}
		switch e.To {
		case store.StatusReady, store.StatusFailed, store.StatusDeleted:
			r.ended = e.Time
			if r.ended.IsZero() {
				r.ended = p.now()
			}
		default:
			r.ended = time.Time{}
			r.err = ""
		}
		if e.To != store.StatusInjectingSecrets {
			r.step = ""
		}
		if !p.tty {
			p.pending = append(p.pending, p.plainLine(e.Tenant, r, e.Time))
		}
	default:
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// plainLine is the line printed for a status change when stdout is not a
// terminal: elapsed time, tenant, status and what happens next.
func (p *progress) plainLine(id string, r *row, at time.Time) string {
	if at.IsZero() {
		at = p.now()
	}
	line := fmt.Sprintf("%7.2fs  %s  %-17s", at.Sub(p.start).Seconds(), id, r.status)
	if s := explain(r); s != "" {
		line += "  " + s
	}
	return strings.TrimRight(line, " ")
}

// explain says in a few words what a status means for the tenant now.
func explain(r *row) string {
	switch r.status {
	case store.StatusPending:
		return "record created"
	case store.StatusCreating:
		return "creating the server"
	case store.StatusCloudInit:
		return "server created; cloud-init is running, waiting for phone_home"
	case store.StatusInjectingSecrets:
		return "phoned home; injecting secrets over SSH"
	case store.StatusReady:
		return "service running"
	case store.StatusFailed:
		return firstLine(r.err)
	case store.StatusDeleted:
		return "deprovisioned"
	}
	return ""
}

// loop writes queued lines (plain) or redraws the board (terminal).
func (p *progress) loop() {
	defer close(p.stopped)
	var tick <-chan time.Time
	if p.tty {
		t := time.NewTicker(p.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-p.wake:
		case <-tick:
		case <-p.done:
			p.flush()
			return
		}
		p.flush()
	}
}

// stop writes what is left and returns when nothing more will be written.
func (p *progress) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
}

func (p *progress) flush() {
	p.mu.Lock()
	var out string
	if p.tty {
		out = p.board()
	} else {
		if len(p.pending) > 0 {
			out = strings.Join(p.pending, "\n") + "\n"
		}
		p.pending = p.pending[:0]
	}
	p.mu.Unlock()
	if out != "" {
		_, _ = io.WriteString(p.w, out)
	}
}

// ANSI sequences used by the board.
const (
	ansiUp    = "\x1b[%dA" // cursor up N lines
	ansiClear = "\x1b[2K"  // erase the whole line
	ansiReset = "\x1b[0m"
	ansiGreen = "\x1b[32m"
	ansiRed   = "\x1b[31m"
	ansiDim   = "\x1b[2m"
	ansiBold  = "\x1b[1m"
)

// board renders the status board, moving the cursor back over the
// previous one first. Called with p.mu held.
func (p *progress) board() string {
	now := p.now()
	lines := []string{p.paint(ansiBold, fmt.Sprintf("  %-8s  %-17s  %-38s  %6s", "TENANT", "STATUS", "PROGRESS", "TIME"))}
	ready, failed := 0, 0
	for _, id := range p.order {
		r := p.rows[id]
		end := r.ended
		if end.IsZero() {
			end = now
		}
		status := string(r.status)
		if status == "" {
			status = "waiting"
		}
		switch r.status {
		case store.StatusReady:
			ready++
			status = p.paint(ansiGreen, fmt.Sprintf("%-17s", status))
		case store.StatusFailed:
			failed++
			status = p.paint(ansiRed, fmt.Sprintf("%-17s", status))
		default:
			status = fmt.Sprintf("%-17s", status)
		}
		lines = append(lines, fmt.Sprintf("  %-8s  %s  %-38s  %6s",
			short(id), status, clip(boardProgress(r), 38), seconds(end.Sub(r.started))))
	}
	summary := fmt.Sprintf("  %d/%d ready", ready, len(p.order))
	if failed > 0 {
		summary += fmt.Sprintf(", %d failed", failed)
	}
	lines = append(lines, p.paint(ansiDim, summary))
	frame := strings.Join(lines, "\n")
	if frame == p.frame {
		return ""
	}
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, ansiUp, p.drawn)
	}
	for _, l := range lines {
		b.WriteString(ansiClear + l + "\n")
	}
	p.drawn, p.frame = len(lines), frame
	return b.String()
}

// boardProgress is the board's PROGRESS column: the injection step while
// secrets are injected, otherwise what the status means.
func boardProgress(r *row) string {
	if r.status == store.StatusInjectingSecrets && r.step != "" {
		n := max(r.steps, r.stepIndex+1)
		return fmt.Sprintf("[%d/%d] %s", r.stepIndex+1, n, r.step)
	}
	switch r.status {
	case "":
		return "queued"
	case store.StatusCloudInit:
		return "cloud-init running, awaiting phone_home"
	case store.StatusFailed:
		return r.err
	}
	return explain(r)
}

func (p *progress) paint(code, s string) string {
	if !p.color {
		return s
	}
	return code + s + ansiReset
}

// short is the first group of a UUID, enough to tell a handful apart.
func short(id string) string {
	if i := strings.IndexByte(id, '-'); i > 0 {
		return id[:i]
	}
	return id
}

// firstLine is s up to its first line break, marked when more followed:
// a plain line stays one line (the final table has the whole error).
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i] + " [...]"
	}
	return s
}

// clip shortens s to n runes, marking the cut with "...".
func clip(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-3]) + "..."
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// result is one tenant's outcome, for the final table.
type result struct {
	ID     string
	Record store.Record
	Took   time.Duration
	Err    error // why waiting for the tenant ended early (interrupt, timeout)
}

// writeTable prints the final table, then the reason of every tenant that
// did not end ready.
func writeTable(w io.Writer, results []result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tSERVER\tTIME")
	for _, r := range results {
		status := string(r.Record.Status)
		if status == "" {
			status = "unknown"
		}
		server := r.Record.ServerName
		if server == "" {
			server = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, status, server, r.Took.Round(10*time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		switch {
		case r.Record.Status == store.StatusReady:
		case r.Record.Error != "":
			fmt.Fprintf(w, "%s: %s\n", r.ID, indent(r.Record.Error))
		case r.Err != nil:
			fmt.Fprintf(w, "%s: %s\n", r.ID, indent(r.Err.Error()))
		}
	}
	return nil
}

// indent indents the lines after the first of a multi-line error.
func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
