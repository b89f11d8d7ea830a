package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store reads and changes runs in Redis. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
	now       func() time.Time
}

// NewStore returns a Store on the keys under prefix. Keys of a run that has
// ended expire after retention (7 days when zero).
func NewStore(rdb redis.UniversalClient, prefix string, retention time.Duration) *Store {
	if retention <= 0 {
		retention = 7 * 24 * time.Hour
	}
	return &Store{rdb: rdb, prefix: prefix, retention: retention, now: time.Now}
}

// Channel is the pub/sub channel every change of a run is published on.
func (s *Store) Channel() string { return s.prefix + "events" }

func (s *Store) currentKey() string            { return s.prefix + "current" }
func (s *Store) lostKey() string               { return s.prefix + "lost" }
func (s *Store) failedKey(id string) string    { return s.runKey(id) + ":failed" }
func (s *Store) runKey(id string) string       { return s.prefix + "run:" + id }
func (s *Store) doneKey(id string) string      { return s.runKey(id) + ":done" }
func (s *Store) leaseKey(id string) string     { return s.runKey(id) + ":releaser" }
func (s *Store) successorKey(id string) string { return s.runKey(id) + ":successor" }
func (s *Store) releasesKey(id string) string  { return s.runKey(id) + ":releases" }
func (s *Store) retentionSeconds() string {
	return strconv.FormatInt(int64(s.retention/time.Second), 10)
}
func (s *Store) nowMS() string { return strconv.FormatInt(s.now().UnixMilli(), 10) }

// NewID returns a readable, unique run id such as r-20261203-193512-7f3a.
func NewID(now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return "r-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Create starts a run of x jobs at y per minute. While another run is
// running it returns a *RunningError carrying that run.
func (s *Store) Create(ctx context.Context, x, y int64) (Run, error) {
	if x < 1 || x > MaxX || y < 1 || y > MaxY {
		return Run{}, fmt.Errorf("create run: x=%d y=%d out of range", x, y)
	}
	for attempt := 0; attempt < 5; attempt++ {
		id := NewID(s.now())
		res, err := createScript.Run(ctx, s.rdb,
			[]string{s.currentKey(), s.runKey(id), s.Channel(), s.lostKey()},
			s.prefix, id, x, y, s.nowMS()).Slice()
		if err != nil {
			return Run{}, fmt.Errorf("create run: %w", err)
		}
		switch res[0] {
		case "running":
			r, err := hashReply(res[1])
			if err != nil {
				return Run{}, err
			}
			return Run{}, &RunningError{Run: r}
		case "created":
			return hashReply(res[1])
		}
		// "exists": the random id collided; draw another.
	}
	return Run{}, errors.New("create run: could not draw an unused run id")
}

// Stop stops the current run. It answers only once no schedule invocation
// holds the run's release lease any more, so that no job of the run is
// released after Stop returns. A run that is not running comes back
// unchanged; ErrNoRun when no run ever existed.
func (s *Store) Stop(ctx context.Context) (Run, error) {
	res, err := stopScript.Run(ctx, s.rdb, []string{s.currentKey(), s.Channel(), s.lostKey()},
		s.prefix, s.nowMS(), s.retentionSeconds()).Slice()
	if err != nil {
		return Run{}, fmt.Errorf("stop run: %w", err)
	}
	switch res[0] {
	case "none":
		return Run{}, ErrNoRun
	case "lost":
		return Run{}, &LostError{RunID: fmt.Sprint(res[1])}
	case "unchanged":
		return hashReply(res[1])
	}
	r, err := hashReply(res[1])
	if err != nil {
		return Run{}, err
	}
	if err := s.waitForRelease(ctx, r.ID); err != nil {
		return Run{}, err
	}
	return s.Get(ctx, r.ID)
}

// waitForRelease waits until the releaser of run id has seen the stop and
// given its lease up, or the lease expired because its holder died.
func (s *Store) waitForRelease(ctx context.Context, id string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := s.rdb.Exists(ctx, s.leaseKey(id)).Result()
		if err != nil {
			return fmt.Errorf("stop run %s: wait for the releaser: %w", id, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop run %s: wait for the releaser: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

// Current returns the current (or last) run, or IdleRun when none exists.
func (s *Store) Current(ctx context.Context) (Run, error) {
	id, err := s.rdb.Get(ctx, s.currentKey()).Result()
	if errors.Is(err, redis.Nil) {
		// No run ever, or Redis lost its data: a job or tick of a run it
		// no longer knows leaves a mark, so that loss is not shown as a
		// fresh idle state with zero counters.
		lost, err := s.rdb.Get(ctx, s.lostKey()).Result()
		if err == nil {
			return Run{}, &LostError{RunID: lost}
		}
		if !errors.Is(err, redis.Nil) {
			return Run{}, fmt.Errorf("read current run: %w", err)
		}
		return IdleRun(), nil
	}
	if err != nil {
		return Run{}, fmt.Errorf("read current run: %w", err)
	}
	r, err := s.Get(ctx, id)
	if errors.Is(err, ErrUnknownRun) {
		// The last run ended long enough ago that its record expired.
		return IdleRun(), nil
	}
	return r, err
}

// Get returns run id, or ErrUnknownRun.
func (s *Store) Get(ctx context.Context, id string) (Run, error) {
	h, err := s.rdb.HGetAll(ctx, s.runKey(id)).Result()
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	r, err := fromHash(h)
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", id, err)
	}
	return r, nil
}

// ReleasesPerSecond returns the release histogram of run id: unix second ->
// jobs released in that second.
func (s *Store) ReleasesPerSecond(ctx context.Context, id string) (map[int64]int64, error) {
	h, err := s.rdb.HGetAll(ctx, s.releasesKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read releases of run %s: %w", id, err)
	}
	out := make(map[int64]int64, len(h))
	for k, v := range h {
		sec, err1 := strconv.ParseInt(k, 10, 64)
		n, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("read releases of run %s: bad entry %q=%q", id, k, v)
		}
		out[sec] = n
	}
	return out, nil
}

// Outcome is how a job ended, named after the counter it increments.
type Outcome string

const (
	Processed Outcome = "processed"
	Failed    Outcome = "failed"
	Cancelled Outcome = "cancelled"
)

// Begin tells whether job should be worked on: the run's state, and whether
// the job is already accounted for (a redelivery). A retry (a job requeued
// from the dead-letter queue) of a job counted as failed takes the failure
// back first, unless the run was stopped. ErrUnknownRun when Redis does not
// know the run.
func (s *Store) Begin(ctx context.Context, runID string, job int64, retry bool) (State, bool, error) {
	r := "0"
	if retry {
		r = "1"
	}
	res, err := beginScript.Run(ctx, s.rdb,
		[]string{s.runKey(runID), s.doneKey(runID), s.failedKey(runID), s.currentKey(), s.lostKey(), s.Channel()},
		job, r, s.retentionSeconds(), s.nowMS(), runID).Slice()
	if err != nil {
		return "", false, fmt.Errorf("begin job %d of run %s: %w", job, runID, err)
	}
	st, _ := res[0].(string)
	switch st {
	case "":
		return "", false, fmt.Errorf("begin job %d of run %s: %w", job, runID, ErrUnknownRun)
	case "nojob":
		return "", false, fmt.Errorf("begin job %d of run %s: %w", job, runID, ErrNoSuchJob)
	}
	bit, _ := res[1].(int64)
	return State(st), bit == 1, nil
}

// Account counts job of run under outcome exactly once. It reports whether
// this call counted it (false: it was already accounted for).
func (s *Store) Account(ctx context.Context, runID string, job int64, outcome Outcome) (bool, error) {
	n, err := accountScript.Run(ctx, s.rdb,
		[]string{s.runKey(runID), s.doneKey(runID), s.Channel(), s.releasesKey(runID), s.failedKey(runID), s.currentKey(), s.lostKey()},
		job, string(outcome), s.nowMS(), s.retentionSeconds(), runID).Int64()
	if err != nil {
		return false, fmt.Errorf("count job %d of run %s as %s: %w", job, runID, outcome, err)
	}
	switch n {
	case -1:
		return false, fmt.Errorf("count job %d of run %s: %w", job, runID, ErrUnknownRun)
	case -2:
		return false, fmt.Errorf("count job %d of run %s: %w", job, runID, ErrNoSuchJob)
	}
	return n == 1, nil
}

// DecodeEvent turns a message of the event channel into a Run.
func DecodeEvent(payload []byte) (Run, error) {
	var h map[string]any
	if err := json.Unmarshal(payload, &h); err != nil {
		return Run{}, fmt.Errorf("decode run event: %w", err)
	}
	flat := make(map[string]string, len(h))
	for k, v := range h {
		switch v := v.(type) {
		case string:
			flat[k] = v
		case float64:
			// cjson writes numbers as numbers when Lua held them as numbers.
			flat[k] = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return Run{}, fmt.Errorf("decode run event: field %s has type %T", k, v)
		}
	}
	return fromHash(flat)
}

// hashReply turns an HGETALL reply inside a script reply into a Run.
func hashReply(v any) (Run, error) {
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 0 {
		return Run{}, fmt.Errorf("unexpected reply from Redis: %v", v)
	}
	h := make(map[string]string, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		h[k] = val
	}
	return fromHash(h)
}
