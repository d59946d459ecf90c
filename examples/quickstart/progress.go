package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// progress shows the tenants' progress while they are provisioned, from
// the Provisioner's events. On a terminal it is a board that redraws in
// place (ANSI cursor movement), sized to the terminal at every redraw: no
// line as wide as the terminal (it would wrap), no more lines than fit
// above the cursor (more would scroll, and the next redraw would start
// below the top of the last); tenants that do not fit are summarized on
// one line. Elsewhere (a pipe, a file, a CI log) it prints one line per
// tenant per status change, and, while a server boots, one per change of
// what it does (Config.BootProgress's phrases: "installing packages",
// "running runcmd") and one for a boot step that failed.
//
// Events arrive on the Provisioner's goroutines (Config.OnEvent must
// return quickly), so observe only updates the state under the mutex and
// queues lines; a goroutine of its own does the writing.
type progress struct {
	w     io.Writer
	tty   bool // redraw a board; else plain lines
	color bool // ANSI colours on the board
	now   func() time.Time
	size  func() (width, height int)
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
	// What the server's boot is doing (a BootProgress.Activity), and
	// what of it failed; reset when a new server is created.
	boot, bootFailed string
}

// progressOptions configure newProgress; now nil means time.Now.
type progressOptions struct {
	tty, color bool
	now        func() time.Time
	// size returns the terminal's width and height, read at every
	// redraw; nil, or a size not above 0, means 80x24.
	size func() (width, height int)
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
	if o.size == nil {
		o.size = func() (int, int) { return 80, 24 }
	}
	p := &progress{
		w: w, tty: o.tty, color: o.color && o.tty, now: o.now, size: o.size, interval: o.interval,
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
	case e.Boot != nil:
		line, changed := bootStep(r, e.Boot)
		if !changed {
			p.mu.Unlock()
			return
		}
		if !p.tty && line != "" {
			p.pending = append(p.pending, p.line(e.Tenant, r, e.Time, line))
		}
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
		if e.To == store.StatusCreating { // a new server: a new boot
			r.boot, r.bootFailed = "", ""
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
	return p.line(id, r, at, explain(r))
}

// line is a plain line: elapsed time, tenant, status and what.
func (p *progress) line(id string, r *row, at time.Time, what string) string {
	if at.IsZero() {
		at = p.now()
	}
	line := fmt.Sprintf("%7.2fs  %s  %-17s", at.Sub(p.start).Seconds(), id, statusName(r.status))
	if what != "" {
		line += "  " + what
	}
	return strings.TrimRight(line, " ")
}

// bootStep records a boot step of r's server: what it now does, when a
// module with a phrase starts while the server boots (not the end of the
// final stage that comes after phone_home), or what failed. changed says
// whether the row changed; line is what a plain output prints for it.
func bootStep(r *row, b *provision.BootProgress) (line string, changed bool) {
	switch {
	case b.Failed():
		if b.Module == "" && r.bootFailed != "" {
			return "", false // the stage's FAIL repeats its module's
		}
		what := b.Activity
		if what == "" {
			what = b.Name
		}
		r.bootFailed = what
		return "boot: " + what + " FAILED", true
	case b.Type == callback.EventStart && b.Activity != "" && b.Activity != r.boot && booting(r.status):
		r.boot = b.Activity
		return "boot: " + b.Activity, true
	}
	return "", false
}

// booting reports whether a tenant in status s waits for its server's
// boot.
func booting(s store.Status) bool {
	switch s {
	case "", store.StatusPending, store.StatusCreating, store.StatusCloudInit:
		return true
	}
	return false
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
	ansiBelow = "\x1b[J"   // erase from the cursor to the end of the screen
	ansiReset = "\x1b[0m"
	ansiGreen = "\x1b[32m"
	ansiRed   = "\x1b[31m"
	ansiDim   = "\x1b[2m"
	ansiBold  = "\x1b[1m"
)

// Board columns: TENANT, STATUS and TIME are fixed; PROGRESS takes what
// the terminal's width leaves, between minProgress and maxProgress
// columns, and is left out below minProgress.
const (
	fixedColumns = 2 + 8 + 2 + 17 + 2 + 6 // indent, TENANT, gap, STATUS, gap, TIME
	minProgress  = 10
	maxProgress  = 70
)

// board renders the status board, moving the cursor back over the
// previous one first. Called with p.mu held.
func (p *progress) board() string {
	now := p.now()
	width, height := p.size()
	if width <= 0 || height <= 0 {
		width, height = 80, 24
	}
	// A line as wide as the terminal wraps on some terminals, and the
	// cursor rests on the line below the board: one column and one line
	// fewer than the terminal has.
	maxWidth, maxLines := width-1, height-1

	progressWidth := min(maxWidth-fixedColumns-2, maxProgress)
	row := func(tenant, status, progress, took string) string {
		if progressWidth < minProgress {
			return fmt.Sprintf("  %-8s  %s  %6s", tenant, status, took)
		}
		return fmt.Sprintf("  %-8s  %s  %-*s  %6s", tenant, status, progressWidth, clip(progress, progressWidth), took)
	}

	counts := make(map[store.Status]int)
	for _, id := range p.order {
		counts[p.rows[id].status]++
	}
	ready, failed := counts[store.StatusReady], counts[store.StatusFailed]
	summary := fmt.Sprintf("  %d/%d ready", ready, len(p.order))
	if failed > 0 {
		summary += fmt.Sprintf(", %d failed", failed)
	}

	var lines []string
	switch slots := maxLines - 2; { // the header and the summary
	case slots < 1:
		// No room for a table: the summary alone, with what the rest do.
		others := maps.Clone(counts)
		delete(others, store.StatusReady)
		delete(others, store.StatusFailed)
		if len(others) > 0 {
			summary += "; " + countList(others)
		}
		lines = []string{p.paint(ansiDim, summary)}
	default:
		lines = append(lines, p.paint(ansiBold, row("TENANT", fmt.Sprintf("%-17s", "STATUS"), "PROGRESS", "TIME")))
		shown, hidden := p.visible(slots)
		for _, id := range shown {
			r := p.rows[id]
			end := r.ended
			if end.IsZero() {
				end = now
			}
			status := fmt.Sprintf("%-17s", statusName(r.status))
			switch r.status {
			case store.StatusReady:
				status = p.paint(ansiGreen, status)
			case store.StatusFailed:
				status = p.paint(ansiRed, status)
			}
			lines = append(lines, row(short(id), status, boardProgress(r), seconds(end.Sub(r.started))))
		}
		if len(hidden) > 0 {
			n := 0
			for _, c := range hidden {
				n += c
			}
			more := fmt.Sprintf("  ... and %d more: %s", n, countList(hidden))
			if len(more) > maxWidth {
				more = fmt.Sprintf("  +%d more: %s", n, countList(hidden))
			}
			lines = append(lines, more)
		}
		lines = append(lines, p.paint(ansiDim, summary))
	}
	for i, l := range lines {
		lines[i] = p.fit(l, maxWidth)
	}

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
	if len(lines) < p.drawn {
		b.WriteString(ansiBelow) // the rest of a taller board drawn before
	}
	p.drawn, p.frame = len(lines), frame
	return b.String()
}

// visible returns the tenants that get a row on a board with slots rows
// for tenants, in display order, and how many of each status the others
// are. When they do not all fit, one slot goes to the line that counts
// the others, and the rows go to failed tenants first, then those being
// worked on, then those waiting, ready ones last: what needs watching.
func (p *progress) visible(slots int) (shown []string, hidden map[store.Status]int) {
	if len(p.order) <= slots {
		return p.order, nil
	}
	rank := func(s store.Status) int {
		switch s {
		case store.StatusFailed:
			return 0
		case "":
			return 2
		case store.StatusReady, store.StatusDeleted:
			return 3
		}
		return 1
	}
	idx := make([]int, len(p.order))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return cmp.Compare(rank(p.rows[p.order[a]].status), rank(p.rows[p.order[b]].status))
	})
	keep := idx[:slots-1]
	slices.Sort(keep)
	hidden = make(map[store.Status]int)
	for _, i := range idx[slots-1:] {
		hidden[p.rows[p.order[i]].status]++
	}
	for _, i := range keep {
		shown = append(shown, p.order[i])
	}
	return shown, hidden
}

// statusName is a status as the board shows it.
func statusName(s store.Status) string {
	if s == "" {
		return "waiting"
	}
	return string(s)
}

// countList renders counts by status, largest first, ties in lifecycle
// order: "7 ready, 3 injecting_secrets, 2 creating".
func countList(counts map[store.Status]int) string {
	order := []store.Status{"", store.StatusPending, store.StatusCreating, store.StatusCloudInit,
		store.StatusInjectingSecrets, store.StatusReady, store.StatusFailed, store.StatusDeleted}
	statuses := slices.Collect(maps.Keys(counts))
	slices.SortFunc(statuses, func(a, b store.Status) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(slices.Index(order, a), slices.Index(order, b))
	})
	parts := make([]string, 0, len(statuses))
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], statusName(s)))
	}
	return strings.Join(parts, ", ")
}

// fit shortens line to n columns, marking the cut with "...". ANSI
// sequences take no column; a colour cut short is reset. A rune counts
// one column: the board's text is ASCII but for step names and errors.
func (p *progress) fit(line string, n int) string {
	if visibleWidth(line) <= n {
		return line
	}
	keep := max(n-3, 0)
	var b strings.Builder
	cols, escaped := 0, false
	for i := 0; i < len(line) && cols < keep; {
		if line[i] == '\x1b' {
			j := i + 1
			for j < len(line) && !(line[j] >= '@' && line[j] <= '~' && line[j] != '[') {
				j++
			}
			b.WriteString(line[i:min(j+1, len(line))])
			i, escaped = j+1, true
			continue
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		b.WriteRune(r)
		i += size
		cols++
	}
	if escaped {
		b.WriteString(ansiReset)
	}
	if n >= 3 {
		b.WriteString("...")
	}
	return b.String()
}

// visibleWidth is the number of columns s takes: its runes, ANSI
// sequences left out.
func visibleWidth(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == '\x1b' {
			j := i + 1
			for j < len(s) && !(s[j] >= '@' && s[j] <= '~' && s[j] != '[') {
				j++
			}
			i = j + 1
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

// boardProgress is the board's PROGRESS column: the injection step while
// secrets are injected, what the server's boot does while it boots (with
// Config.BootProgress), otherwise what the status means.
func boardProgress(r *row) string {
	if r.status == store.StatusInjectingSecrets && r.step != "" {
		n := max(r.steps, r.stepIndex+1)
		return fmt.Sprintf("[%d/%d] %s", r.stepIndex+1, n, r.step)
	}
	if booting(r.status) && r.status != "" && (r.boot != "" || r.bootFailed != "") {
		// A failure first: it must survive the column's clipping.
		switch {
		case r.bootFailed == "":
			return "boot: " + r.boot
		case r.bootFailed == r.boot || r.boot == "":
			return "boot: " + r.bootFailed + " FAILED"
		}
		return "boot: " + r.bootFailed + " FAILED; " + r.boot
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
