package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/inject"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// What the API shows of a tenant's events: the last one, in words, steps
// numbered from 1 out of the injection's, the cloud-init wait included;
// when the current status was entered.
func TestProgress(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, tc := range []struct {
		name      string
		steps     []inject.Step // what StepsFunc returned, when it was called
		events    []provision.Event
		status    store.Status
		want      *lastEvent
		wantSince time.Time
	}{
		{name: "nothing seen", status: store.StatusReady},
		{name: "created", status: store.StatusPending,
			events: []provision.Event{{To: store.StatusPending, Time: at(0)}},
			want:   &lastEvent{At: at(0), Text: "pending"}, wantSince: at(0)},
		{name: "status change", status: store.StatusCloudInit,
			events: []provision.Event{{From: store.StatusCreating, To: store.StatusCloudInit, Time: at(1)}},
			want:   &lastEvent{At: at(1), Text: "creating → cloud_init"}, wantSince: at(1)},
		{name: "a step of seven, provision's cloud-init wait first", status: store.StatusInjectingSecrets,
			steps: make([]inject.Step, 6),
			events: []provision.Event{
				{From: store.StatusCloudInit, To: store.StatusInjectingSecrets, Time: at(1)},
				{Step: "write .env", StepIndex: 2, Time: at(2)},
			},
			want: &lastEvent{At: at(2), Text: "step 3/7 write .env", Step: 3, Steps: 7}, wantSince: at(1)},
		{name: "steps that begin with the cloud-init wait", status: store.StatusInjectingSecrets,
			steps:  []inject.Step{inject.WaitCloudInit(true), {}, {}},
			events: []provision.Event{{Step: "start", StepIndex: 2, StepDone: true, Time: at(2)}},
			want:   &lastEvent{At: at(2), Text: "step 3/3 start: done", Step: 3, Steps: 3}},
		{name: "a step failed", status: store.StatusInjectingSecrets,
			steps:  make([]inject.Step, 1),
			events: []provision.Event{{Step: "check", StepIndex: 1, StepDone: true, Err: errors.New("exit 3"), Time: at(2)}},
			want:   &lastEvent{At: at(2), Text: "step 2/2 check: failed", Step: 2, Steps: 2, Failed: true}},
		{name: "steps of an injection this process did not start", status: store.StatusInjectingSecrets,
			events: []provision.Event{{Step: "check", StepIndex: 4, Time: at(2)}},
			want:   &lastEvent{At: at(2), Text: "step 5 check", Step: 5}},
		{name: "failed", status: store.StatusFailed,
			events: []provision.Event{{From: store.StatusInjectingSecrets, To: store.StatusFailed, Err: errors.New("x"), Time: at(3)}},
			want:   &lastEvent{At: at(3), Text: "injecting_secrets → failed", Failed: true}, wantSince: at(3)},
		{name: "a replacement", status: store.StatusCreating,
			events: []provision.Event{{From: store.StatusReady, To: store.StatusCreating, RetiringServer: "41", Time: at(1)}},
			want:   &lastEvent{At: at(1), Text: "ready → creating (replacing server 41)"}, wantSince: at(1)},
		{name: "out of order: the later event stays", status: store.StatusInjectingSecrets,
			events: []provision.Event{
				{From: store.StatusCloudInit, To: store.StatusInjectingSecrets, Time: at(2)},
				{From: store.StatusCreating, To: store.StatusCloudInit, Time: at(1)},
			},
			want: &lastEvent{At: at(2), Text: "cloud_init → injecting_secrets"}, wantSince: at(2)},
		{name: "the status entered is another", status: store.StatusReady,
			events: []provision.Event{{From: store.StatusCloudInit, To: store.StatusInjectingSecrets, Time: at(2)}},
			want:   &lastEvent{At: at(2), Text: "cloud_init → injecting_secrets"}},
		{name: "drift", status: store.StatusReady,
			events: []provision.Event{{From: store.StatusInjectingSecrets, To: store.StatusReady, Time: at(1)}, {Drift: "server gone", Time: at(5)}},
			want:   &lastEvent{At: at(5), Text: "drift: server gone"}, wantSince: at(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newProgress()
			if tc.steps != nil {
				_, err := p.stepsCounter(func(context.Context, provision.StepsInput) ([]inject.Step, error) {
					return tc.steps, nil
				})(context.Background(), provision.StepsInput{Record: store.Record{ID: idA}})
				require.NoError(t, err)
			}
			for _, e := range tc.events {
				e.Tenant = idA
				p.record(e)
			}
			got, since := p.of(idA, tc.status)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.wantSince, since)
			other, _ := p.of(idB, tc.status)
			assert.Nil(t, other, "another tenant's")
		})
	}
}

// await wakes on the first matching event of its tenant, and not before.
func TestProgressAwait(t *testing.T) {
	t.Parallel()
	p := newProgress()
	claimed, stop := p.await(idA, func(e provision.Event) bool { return e.From == store.StatusFailed })
	defer stop()
	other, stopOther := p.await(idA, func(e provision.Event) bool { return e.To == store.StatusReady })
	p.record(provision.Event{Tenant: idB, From: store.StatusFailed, To: store.StatusCreating})
	p.record(provision.Event{Tenant: idA, Step: "x"})
	select {
	case <-claimed:
		t.Fatal("woken by another tenant's event, or a step")
	default:
	}
	p.record(provision.Event{Tenant: idA, From: store.StatusFailed, To: store.StatusCreating})
	<-claimed
	stopOther()
	p.record(provision.Event{Tenant: idA, To: store.StatusReady})
	select {
	case <-other:
		t.Fatal("woken after it stopped waiting")
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	assert.Empty(t, p.waiters, "no waiter left behind")
}
