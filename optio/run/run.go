// Package run holds the state of Optio runs in Redis: creating, stopping and
// reading a run, counting each job exactly once, and the event channel every
// change is published on.
//
// Keys (P is the configured prefix, "optio:" by default):
//
//	P current               id of the current (or last) run
//	P lost                  id of a run Redis lost (set when a job names it and no run is current)
//	P run:<id>              hash: the run's fields and counters
//	P run:<id>:done         bitmap: bit j set once job j is accounted for
//	P run:<id>:failed       bitmap: bit j set when job j was counted as failed
//	P run:<id>:releaser     lease of the schedule invocation releasing the run
//	P run:<id>:successor    a schedule invocation waiting to take the lease over
//	P run:<id>:releases     hash: unix second -> jobs released in that second
//	P events                pub/sub channel: the run's hash, as JSON, after each change
package run

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// State is where a run is in its life.
type State string

const (
	Idle      State = "idle"
	Running   State = "running"
	Stopped   State = "stopped"
	Completed State = "completed"
)

// Limits of a run request, from PRODUCT.md.
const (
	MaxX = 10_000_000
	MaxY = 1_000_000
)

// Run is one batch of X jobs at Y per minute: the JSON object of the HTTP API.
type Run struct {
	ID         string     `json:"runId,omitempty"`
	State      State      `json:"state"`
	XTotal     int64      `json:"xTotal"`
	YPerMinute int64      `json:"yPerMinute"`
	Enqueued   int64      `json:"enqueued"`
	Processed  int64      `json:"processed"`
	Failed     int64      `json:"failed"`
	Cancelled  int64      `json:"cancelled"`
	StartedAt  *time.Time `json:"startedAt"`
	UpdatedAt  *time.Time `json:"updatedAt"`
	FinishedAt *time.Time `json:"finishedAt"`
	// Done is processed + failed + cancelled: every job that is accounted for.
	Done int64 `json:"done"`
	// Remaining is the number of jobs not yet accounted for.
	Remaining int64 `json:"remaining"`
}

// Errors callers branch on to choose an HTTP status.
var (
	// ErrRunning: another run is running (409); the error carries that run.
	ErrRunning = errors.New("a run is already running")
	// ErrNoRun: no run has ever existed (404).
	ErrNoRun = errors.New("no run has ever existed")
	// ErrUnknownRun: a job names a run Redis does not know, for example
	// because Redis lost its data. Never treated as a fresh start.
	ErrUnknownRun = errors.New("unknown run")
	// ErrNoSuchJob: a job index outside the run's 0..x-1, from a forged or
	// corrupt message; it is neither worked on nor counted.
	ErrNoSuchJob = errors.New("no such job in the run")
)

// ErrLost: Redis lost the data of the current run (it restarted without
// persistence). Matched by a *LostError.
var ErrLost = errors.New("Redis lost the run's data")

// LostError names the run whose data Redis lost.
type LostError struct{ RunID string }

func (e *LostError) Error() string {
	return fmt.Sprintf("Redis no longer knows run %s: its data was lost (was Redis restarted without persistence?); "+
		"its counters cannot be trusted, start a new run", e.RunID)
}
func (e *LostError) Unwrap() error { return ErrLost }

// RunningError is returned by Create when a run is already running.
type RunningError struct{ Run Run }

func (e *RunningError) Error() string { return fmt.Sprintf("run %s is running", e.Run.ID) }
func (e *RunningError) Unwrap() error { return ErrRunning }

// fromHash builds a Run from the fields of its Redis hash. Times are stored
// as unix milliseconds.
func fromHash(h map[string]string) (Run, error) {
	if len(h) == 0 {
		return Run{}, ErrUnknownRun
	}
	r := Run{ID: h["id"], State: State(h["state"])}
	ints := []struct {
		field string
		dst   *int64
	}{
		{"x", &r.XTotal}, {"y", &r.YPerMinute}, {"enqueued", &r.Enqueued},
		{"processed", &r.Processed}, {"failed", &r.Failed}, {"cancelled", &r.Cancelled},
	}
	for _, f := range ints {
		v, ok := h[f.field]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Run{}, fmt.Errorf("run %s: field %s=%q is not a number", r.ID, f.field, v)
		}
		*f.dst = n
	}
	r.StartedAt = msTime(h["startedAt"])
	r.UpdatedAt = msTime(h["updatedAt"])
	r.FinishedAt = msTime(h["finishedAt"])
	r.Done = r.Processed + r.Failed + r.Cancelled
	r.Remaining = max(r.XTotal-r.Done, 0)
	// The releaser counts a batch after RabbitMQ confirmed it, so a fast
	// job can be processed a moment before its release is counted.
	r.Enqueued = max(r.Enqueued, r.Done)
	return r, nil
}

func msTime(v string) *time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms == 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// IdleRun is the answer of status when no run ever existed.
func IdleRun() Run { return Run{State: Idle} }
