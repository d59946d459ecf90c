package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/callback"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), got)
}

// clock is a manual time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                    { return c.t }
func (c *clock) advance(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

const (
	tenantA = "0b5e1a8c-3f4d-4e2a-9c7b-5d6e7f8a9b0c"
	tenantB = "7d2f4c1e-9a8b-4c3d-8e7f-1a2b3c4d5e6f"
)

// scenario replays a run of two tenants: A becomes ready, B fails its
// injection once, is retried and fails for good. After each event, step
// is called (the test renders there).
func scenario(c *clock, p *progress, step func()) {
	ev := func(d time.Duration, e provision.Event) {
		e.Time = c.advance(d)
		p.observe(e)
		step()
	}
	status := func(id string, from, to store.Status) provision.Event {
		return provision.Event{Tenant: id, From: from, To: to}
	}
	stepEv := func(id string, i int, name string, done bool, err error) provision.Event {
		return provision.Event{Tenant: id, Step: name, StepIndex: i, StepDone: done, Err: err}
	}
	// boot is a boot step of the tenant's server (Config.BootProgress):
	// "start" or the result of a finish, of a module in a stage, or of the
	// stage itself when module is "".
	boot := func(id, stage, module, what string) provision.Event {
		b := &provision.BootProgress{Name: stage, Stage: stage, Module: module, Activity: provision.BootActivity(module), Type: callback.EventStart}
		if module != "" {
			b.Name += "/config-" + module
		}
		if what != "start" {
			b.Type, b.Result = callback.EventFinish, callback.Result(what)
		}
		return provision.Event{Tenant: id, Boot: b}
	}
	p.begin(tenantA)
	p.begin(tenantB)
	ev(10*time.Millisecond, status(tenantA, "", store.StatusPending))
	ev(time.Millisecond, status(tenantA, store.StatusPending, store.StatusCreating))
	ev(time.Millisecond, status(tenantB, "", store.StatusPending))
	ev(time.Millisecond, status(tenantB, store.StatusPending, store.StatusCreating))
	ev(40*time.Millisecond, status(tenantA, store.StatusCreating, store.StatusCloudInit))
	ev(5*time.Millisecond, status(tenantB, store.StatusCreating, store.StatusCloudInit))
	// The boots: a line per phrase, not per event; B's runcmd fails.
	ev(100*time.Millisecond, boot(tenantA, "init-network", "migrator", "start"))
	ev(time.Millisecond, boot(tenantA, "init-network", "migrator", "SUCCESS"))
	ev(time.Millisecond, boot(tenantA, "init-network", "users-groups", "start"))
	ev(time.Millisecond, boot(tenantB, "init-network", "users-groups", "start"))
	ev(50*time.Millisecond, boot(tenantA, "init-network", "users-groups", "SUCCESS"))
	ev(100*time.Millisecond, boot(tenantA, "modules-final", "package-update-upgrade-install", "start"))
	ev(10*time.Millisecond, boot(tenantB, "modules-final", "package-update-upgrade-install", "start"))
	ev(400*time.Millisecond, boot(tenantA, "modules-final", "package-update-upgrade-install", "SUCCESS"))
	ev(time.Millisecond, boot(tenantA, "modules-final", "write-files-deferred", "start"))
	ev(time.Millisecond, boot(tenantA, "modules-final", "scripts-user", "start"))
	ev(20*time.Millisecond, boot(tenantB, "modules-final", "scripts-user", "start"))
	ev(10*time.Millisecond, boot(tenantB, "modules-final", "scripts-user", "FAIL"))
	ev(100*time.Millisecond, boot(tenantA, "modules-final", "phone-home", "start"))
	ev(10*time.Millisecond, boot(tenantB, "modules-final", "phone-home", "start"))
	ev(200*time.Millisecond, status(tenantA, "", store.StatusInjectingSecrets))
	// The end of the final stage, after phone_home: nothing to show.
	ev(time.Millisecond, boot(tenantA, "modules-final", "phone-home", "SUCCESS"))
	ev(time.Millisecond, boot(tenantA, "modules-final", "final-message", "start"))
	ev(time.Millisecond, boot(tenantA, "modules-final", "", "SUCCESS"))
	p.setSteps(tenantA, 3)
	ev(time.Millisecond, stepEv(tenantA, 0, "wait for cloud-init", false, nil))
	ev(time.Millisecond, boot(tenantB, "modules-final", "", "FAIL"))
	ev(20*time.Millisecond, status(tenantB, "", store.StatusInjectingSecrets))
	p.setSteps(tenantB, 3)
	ev(time.Millisecond, stepEv(tenantB, 0, "wait for cloud-init", false, nil))
	ev(30*time.Millisecond, stepEv(tenantA, 0, "wait for cloud-init", true, nil))
	ev(time.Millisecond, stepEv(tenantA, 1, "write a file with a name far too long for the board's column", false, nil))
	ev(30*time.Millisecond, stepEv(tenantA, 1, "write a file with a name far too long for the board's column", true, nil))
	ev(time.Millisecond, stepEv(tenantA, 2, "check app.service is active", false, nil))
	failure := errors.New("inject: step 0 \"wait for cloud-init\": cloud-init status: error\nrunning runcmd failed")
	ev(10*time.Millisecond, stepEv(tenantB, 0, "wait for cloud-init", true, failure))
	ev(time.Millisecond, provision.Event{Tenant: tenantB, From: store.StatusInjectingSecrets, To: store.StatusFailed, Err: failure})
	ev(500*time.Millisecond, stepEv(tenantA, 2, "check app.service is active", true, nil))
	ev(time.Millisecond, status(tenantA, store.StatusInjectingSecrets, store.StatusReady))
	ev(2*time.Second, status(tenantB, store.StatusFailed, store.StatusInjectingSecrets))
	ev(40*time.Millisecond, provision.Event{Tenant: tenantB, From: store.StatusInjectingSecrets, To: store.StatusFailed, Err: failure})
	// Events of tenants that are not on the board are ignored.
	ev(time.Millisecond, status("5c9e0d3a-1b2c-4d5e-8f90-a1b2c3d4e5f6", "", store.StatusPending))
}

// The plain output, for a pipe or a log: one line per tenant per status
// change, never a cursor movement.
func TestPlainLines(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	var out bytes.Buffer
	p := makeProgress(&out, []string{tenantA, tenantB}, progressOptions{now: c.now})
	scenario(c, p, p.flush)
	p.flush()
	got := out.String()
	assert.NotContains(t, got, "\x1b", "no escape sequence outside a terminal")
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		assert.Regexp(t, `^ {0,3}\d+\.\d\ds  [0-9a-f-]{36}  [a-z_]+( +\S.*)?$`, line)
	}
	golden(t, "plain.golden", got)
}

// The board, on a terminal: redrawn in place, each frame moving the
// cursor back over the last; under 80 columns so no line wraps.
func TestBoard(t *testing.T) {
	t.Parallel()
	for _, color := range []bool{false, true} {
		name := "board.golden"
		if color {
			name = "board-color.golden"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			var out bytes.Buffer
			p := makeProgress(&out, []string{tenantA, tenantB}, progressOptions{tty: true, color: color, now: c.now})
			frames := 0
			scenario(c, p, func() {
				before := out.Len()
				p.flush()
				if out.Len() > before {
					frames++
				}
			})
			before := out.Len()
			p.flush()
			assert.Equal(t, before, out.Len(), "an unchanged board is not redrawn")

			got := out.String()
			if !color {
				assert.NotContains(t, got, "\x1b[3", "no colour")
				for _, line := range strings.Split(got, "\n") {
					line = strings.NewReplacer("\x1b[2K", "", "\x1b[4A", "").Replace(line)
					assert.LessOrEqual(t, len(line), 79, "%q", line)
				}
			}
			assert.Equal(t, frames-1, strings.Count(got, "\x1b[4A"), "every frame but the first moves up over the last")
			golden(t, name, strings.ReplaceAll(got, "\x1b", `\e`))
		})
	}
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, writeTable(&out, []result{
		{ID: tenantA, Took: 2345 * time.Millisecond, Record: store.Record{ID: tenantA, Status: store.StatusReady, ServerName: "hatchery-" + tenantA}},
		{ID: tenantB, Took: 61 * time.Second, Record: store.Record{ID: tenantB, Status: store.StatusFailed, ServerName: "hatchery-" + tenantB, Error: "inject: check app.service is active: failed\n-- journal --\napp.service: Main process exited"}},
		{ID: "5c9e0d3a-1b2c-4d5e-8f90-a1b2c3d4e5f6", Took: 120 * time.Second, Record: store.Record{Status: store.StatusCloudInit}, Err: errors.New("timed out after 2m0s (see -timeout)")},
		{ID: "00000000-0000-4000-8000-000000000000", Took: time.Millisecond, Err: errors.New("interrupted")},
	}))
	golden(t, "table.golden", out.String())
}

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{"exactly10!", "exactly10!"},
		{"eleven char", "eleven ..."},
		{"first line\nsecond line", "first line"},
		{"ünïcödé wörds", "ünïcödé..."},
	} {
		assert.Equal(t, tc.want, clip(tc.in, 10), tc.in)
	}
}

// crowdIDs are n tenant IDs, fixed for the golden files.
func crowdIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-1b2c-4d5e-8f90-%012x", 0x10000000+i*0x01234567, i)
	}
	return ids
}

// crowd replays a run of 30 tenants in waves, calling step at each
// checkpoint: every tenant waits; 20 are created; 12 phone home; some
// inject, one fails; the last 10 start; all but the failed one end
// ready.
func crowd(c *clock, p *progress, ids []string, step func()) {
	ev := func(d time.Duration, e provision.Event) {
		e.Time = c.advance(d)
		p.observe(e)
	}
	to := func(id string, s store.Status) provision.Event { return provision.Event{Tenant: id, To: s} }
	for _, id := range ids {
		p.begin(id)
	}
	step()
	for _, id := range ids[:20] {
		ev(time.Millisecond, to(id, store.StatusPending))
		ev(time.Millisecond, to(id, store.StatusCreating))
	}
	step()
	for _, id := range ids[:12] {
		ev(40*time.Millisecond, to(id, store.StatusCloudInit))
	}
	step()
	for i, id := range ids[:8] {
		ev(time.Second, to(id, store.StatusInjectingSecrets))
		p.setSteps(id, 5)
		ev(time.Millisecond, provision.Event{Tenant: id, Step: "write /home/rachel8/.claude/.credentials.json", StepIndex: i % 5})
	}
	step()
	for _, id := range ids[:7] {
		ev(300*time.Millisecond, to(id, store.StatusReady))
	}
	failure := errors.New("inject: step 4 \"check rachel8.service is active\": failed\n-- journal --")
	ev(time.Millisecond, provision.Event{Tenant: ids[7], To: store.StatusFailed, Err: failure})
	step()
	for _, id := range ids[20:] {
		ev(time.Millisecond, to(id, store.StatusPending))
		ev(time.Millisecond, to(id, store.StatusCreating))
	}
	step()
	for i, id := range ids {
		if i != 7 {
			ev(50*time.Millisecond, to(id, store.StatusReady))
		}
	}
	step()
}

// More tenants than the terminal has rows: every frame fits the terminal
// (at most height-1 lines, none as wide as the terminal), has one header,
// and is drawn over the last, so the screen never scrolls; the tenants
// that do not fit are counted on one line, those that need watching
// (failed, in progress) keep their rows. The golden files hold the
// output, escape sequences as \e.
func TestBoardSmallTerminal(t *testing.T) {
	t.Parallel()
	for _, size := range []struct{ w, h int }{{80, 24}, {40, 10}} {
		name := fmt.Sprintf("board-30-%dx%d.golden", size.w, size.h)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			ids := crowdIDs(30)
			var out bytes.Buffer
			p := makeProgress(&out, ids, progressOptions{tty: true, color: true, now: c.now,
				size: func() (int, int) { return size.w, size.h }})
			scr := newScreen(t, size.w, size.h)
			frames := 0
			crowd(c, p, ids, func() {
				before := out.Len()
				p.flush()
				frame := out.String()[before:]
				if frame == "" {
					return
				}
				frames++
				lines := strings.Split(strings.TrimSuffix(frame, "\n"), "\n")
				assert.LessOrEqual(t, len(lines), size.h-1, "the frame fits above the cursor")
				for _, l := range lines {
					assert.LessOrEqual(t, visibleWidth(l), size.w-1, "%q", l)
				}
				assert.Equal(t, 1, strings.Count(frame, "TENANT"), "one header per frame")
				scr.write(frame)
				assert.Empty(t, scr.scrolled, "nothing scrolled off: redrawn in place")
				assert.Equal(t, 1, count(scr.lines(), "TENANT"), "one header on the screen")
			})
			assert.Equal(t, 7, frames)
			assert.Zero(t, scr.wraps, "no line wrapped")
			got := out.String()
			assert.Equal(t, frames-1, strings.Count(got, fmt.Sprintf("\x1b[%dA", size.h-1)), "every frame but the first moves up over the last")

			final := strings.Join(scr.lines(), "\n")
			assert.Contains(t, final, "29/30 ready, 1 failed")
			assert.Contains(t, final, short(ids[7])+"  failed", "a failed tenant keeps its row")
			assert.Regexp(t, `(\.\.\. and |\+)\d+ more: \d+ ready\n`, final)
			golden(t, name, strings.ReplaceAll(got, "\x1b", `\e`))
		})
	}
}

// A terminal made smaller gets a smaller board, with what was below it
// erased; one made larger gets a larger board.
func TestBoardResize(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ids := crowdIDs(30)
	w, h := 80, 24
	var out bytes.Buffer
	p := makeProgress(&out, ids, progressOptions{tty: true, now: c.now, size: func() (int, int) { return w, h }})
	frame := func() []string {
		before := out.Len()
		p.flush()
		return strings.Split(strings.TrimSuffix(out.String()[before:], "\n"), "\n")
	}
	assert.Len(t, frame(), 23)
	w, h = 50, 12
	c.advance(time.Second)
	small := frame()
	require.Len(t, small, 12, "cursor up, 11 lines, erase below")
	assert.Equal(t, "\x1b[23A", small[0][:5])
	assert.Equal(t, ansiBelow, small[11])
	for _, l := range small {
		assert.LessOrEqual(t, visibleWidth(l), 49, "%q", l)
	}
	w, h = 100, 40
	c.advance(time.Second)
	large := frame()
	assert.Len(t, large, 32, "all 30 tenants, the header and the summary")
	assert.Equal(t, "\x1b[11A", large[0][:5])
	assert.NotContains(t, strings.Join(large, "\n"), ansiBelow)

	// A terminal of three lines or fewer gets the summary alone.
	w, h = 80, 3
	c.advance(time.Second)
	tiny := frame()
	require.Len(t, tiny, 2)
	assert.Equal(t, "\x1b[32A"+ansiClear+"  0/30 ready; 30 waiting", tiny[0])
}

func TestFit(t *testing.T) {
	t.Parallel()
	p := &progress{color: true}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ..."},
		{ansiBold + "bold header line" + ansiReset, 10, ansiBold + "bold he" + ansiReset + "..."},
		{"  a  " + ansiRed + "failed" + ansiReset + "  why", 8, "  a  ..."},
		{"  a  " + ansiRed + "failed" + ansiReset + "  why", 10, "  a  " + ansiRed + "fa" + ansiReset + "..."},
		{"ünïcödé wörds", 10, "ünïcödé..."},
		{"abc", 2, ""},
	} {
		got := p.fit(tc.in, tc.n)
		assert.Equal(t, tc.want, got, "%q", tc.in)
		assert.LessOrEqual(t, visibleWidth(got), tc.n)
	}
}

func TestCountList(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "7 ready, 3 injecting_secrets, 2 creating", countList(map[store.Status]int{
		store.StatusCreating: 2, store.StatusReady: 7, store.StatusInjectingSecrets: 3}))
	assert.Equal(t, "2 waiting, 2 creating, 1 failed", countList(map[store.Status]int{
		store.StatusFailed: 1, store.StatusCreating: 2, "": 2}))
}
