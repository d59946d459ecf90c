package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// progress keeps, in memory, what this process saw of each tenant through
// provision's events (Config.OnEvent): the last event, when the tenant
// entered its status, and how many steps its injection has (counted by
// stepsCounter). The API shows them next to the record (tenant.LastEvent,
// tenant.StatusSince). It is this replica's view: work done by another
// replica shows in the record only, and a restart forgets it.
//
// It also lets a request wait for an event (await): an action answers once
// its claim is made, while the work goes on in the background.
type progress struct {
	mu      sync.Mutex
	last    map[string]lastEvent
	entered map[string]statusEntry
	steps   map[string]int // steps of the tenant's current injection, the cloud-init wait included
	waiters map[string][]*waiter
}

// lastEvent is the last event of a tenant that this process saw, as the
// API shows it.
type lastEvent struct {
	At   time.Time `json:"at"`
	Text string    `json:"text"` // "step 3/7 write .env", "cloud_init → injecting_secrets"
	// Step and Steps number an injection step from 1 ("step 3 of 7");
	// Steps is 0 when unknown (an injection this process did not start).
	Step   int  `json:"step,omitempty"`
	Steps  int  `json:"steps,omitempty"`
	Failed bool `json:"failed,omitempty"` // the step or the change failed
}

type statusEntry struct {
	status store.Status
	at     time.Time
}

type waiter struct {
	match func(provision.Event) bool
	ch    chan struct{}
}

func newProgress() *progress {
	return &progress{
		last:    map[string]lastEvent{},
		entered: map[string]statusEntry{},
		steps:   map[string]int{},
		waiters: map[string][]*waiter{},
	}
}

// record is provision.Config.OnEvent: it must return quickly, and is
// called from many goroutines.
func (p *progress) record(e provision.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	le := lastEvent{At: e.Time.UTC(), Failed: e.Err != nil || e.To == store.StatusFailed}
	switch {
	case e.Drift != "":
		le.Text = "drift: " + e.Drift
	case e.DriftCleared:
		le.Text = "drift cleared"
	case e.Step != "":
		le.Step, le.Steps = e.StepIndex+1, p.steps[e.Tenant]
		le.Text = fmt.Sprintf("step %d", le.Step)
		if le.Steps >= le.Step {
			le.Text += fmt.Sprintf("/%d", le.Steps)
		}
		le.Text += " " + e.Step
		switch {
		case e.Err != nil:
			le.Text += ": failed"
		case e.StepDone:
			le.Text += ": done"
		}
	default:
		le.Text = string(e.To)
		if e.From != "" {
			le.Text = string(e.From) + " → " + le.Text
		}
		if e.RetiringServer != "" {
			le.Text += " (replacing server " + e.RetiringServer + ")"
		}
		// Events can arrive out of order (see provision.Config.OnEvent):
		// the store has the status, this only when it was entered.
		if cur, ok := p.entered[e.Tenant]; !ok || !e.Time.Before(cur.at) {
			p.entered[e.Tenant] = statusEntry{e.To, e.Time.UTC()}
		}
	}
	if cur, ok := p.last[e.Tenant]; !ok || !e.Time.Before(cur.At) {
		p.last[e.Tenant] = le
	}
	ws := p.waiters[e.Tenant][:0]
	for _, w := range p.waiters[e.Tenant] {
		if w.match(e) {
			close(w.ch)
			continue
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		delete(p.waiters, e.Tenant)
	} else {
		p.waiters[e.Tenant] = ws
	}
}

// await returns a channel closed at the first event of tenant id from now
// on that match accepts, and a function that stops waiting (call it when
// done).
func (p *progress) await(id string, match func(provision.Event) bool) (<-chan struct{}, func()) {
	w := &waiter{match: match, ch: make(chan struct{})}
	p.mu.Lock()
	p.waiters[id] = append(p.waiters[id], w)
	p.mu.Unlock()
	return w.ch, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		ws := p.waiters[id]
		for i, x := range ws {
			if x == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(p.waiters, id)
		} else {
			p.waiters[id] = ws
		}
	}
}

// of returns what this process saw of tenant id: its last event, and when
// it entered status (zero when this process did not see it happen).
func (p *progress) of(id string, status store.Status) (*lastEvent, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var since time.Time
	if e, ok := p.entered[id]; ok && e.status == status {
		since = e.at
	}
	le, ok := p.last[id]
	if !ok {
		return nil, since
	}
	return &le, since
}

// stepsCounter wraps a provision.Config.StepsFunc to note how many steps
// each tenant's injection has, the cloud-init wait that provision runs
// first included (it is step 1: provision.Event.StepIndex 0), so that the
// events can say "step 3/7".
func (p *progress) stepsCounter(steps func(context.Context, provision.StepsInput) ([]inject.Step, error)) func(context.Context, provision.StepsInput) ([]inject.Step, error) {
	return func(ctx context.Context, in provision.StepsInput) ([]inject.Step, error) {
		s, err := steps(ctx, in)
		if err != nil {
			return s, err
		}
		n := len(s) + 1
		// Steps that begin with the cloud-init wait have it run instead of
		// provision's own (see provision.Config.StepsFunc).
		if len(s) > 0 && (s[0].Cmd == inject.WaitCloudInit(true).Cmd || s[0].Cmd == inject.WaitCloudInit(false).Cmd) {
			n--
		}
		p.mu.Lock()
		p.steps[in.Record.ID] = n
		p.mu.Unlock()
		return s, nil
	}
}
