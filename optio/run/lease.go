package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Lease is the right to release jobs of one run. Only one schedule
// invocation holds it at a time; every commit renews it, and a holder that
// dies loses it after its TTL.
type Lease struct {
	store *Store
	RunID string
	token string
	ttl   time.Duration

	// Where releasing continues: the next job index, the instant of the last
	// release (zero if none), the run's x and y.
	Next, X, Y int64
	Last       time.Time
}

// ErrBusy: another invocation holds the lease.
var ErrBusy = errors.New("another schedule invocation is releasing this run")

// ErrLeaseLost: the lease expired and may be held by another invocation.
var ErrLeaseLost = errors.New("release lease lost")

// NotRunningError: the run is not running (any more), so nothing is released.
type NotRunningError struct{ State State }

func (e *NotRunningError) Error() string { return "run is " + string(e.State) }

// Acquire takes the release lease of run id for ttl. waiting marks the
// caller as a successor, which asks the holder to hand over at its next
// handover point.
func (s *Store) Acquire(ctx context.Context, id string, ttl time.Duration, waiting bool) (*Lease, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	return s.acquire(ctx, id, token, ttl, waiting)
}

func (s *Store) acquire(ctx context.Context, id, token string, ttl time.Duration, waiting bool) (*Lease, error) {
	w := "0"
	if waiting {
		w = "1"
	}
	res, err := acquireScript.Run(ctx, s.rdb,
		[]string{s.runKey(id), s.leaseKey(id), s.successorKey(id)},
		token, ttl.Milliseconds(), w).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("acquire release lease of run %s: %w", id, err)
	}
	switch res[0] {
	case "acquired":
		l := &Lease{store: s, RunID: id, token: token, ttl: ttl}
		l.Next, _ = strconv.ParseInt(res[1], 10, 64)
		l.X, _ = strconv.ParseInt(res[3], 10, 64)
		l.Y, _ = strconv.ParseInt(res[4], 10, 64)
		if us, _ := strconv.ParseInt(res[2], 10, 64); us > 0 {
			l.Last = time.UnixMicro(us)
		}
		return l, nil
	case "busy":
		return nil, ErrBusy
	case "unknown":
		return nil, fmt.Errorf("acquire release lease: %w %s", ErrUnknownRun, id)
	}
	return nil, &NotRunningError{State: State(res[0])}
}

// AcquireWaiting retries Acquire as a waiting successor until it succeeds,
// the run stops running, or wait has passed (ErrBusy).
func (s *Store) AcquireWaiting(ctx context.Context, id string, ttl, wait time.Duration) (*Lease, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	deadline := time.Now().Add(wait)
	for {
		l, err := s.acquire(ctx, id, token, ttl, true)
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Commit records that the jobs up to next (exclusive) were released, the
// last one at last, with perSecond the histogram of this batch, and renews
// the lease. It returns the run's state and whether a successor is waiting.
func (l *Lease) Commit(ctx context.Context, next int64, last time.Time, released int64, perSecond map[int64]int64) (State, bool, error) {
	s := l.store
	args := []any{l.token, l.ttl.Milliseconds(), next, last.UnixMicro(), released, s.nowMS()}
	for sec, n := range perSecond {
		args = append(args, sec, n)
	}
	res, err := commitScript.Run(ctx, s.rdb,
		[]string{s.runKey(l.RunID), s.leaseKey(l.RunID), s.successorKey(l.RunID), s.releasesKey(l.RunID), s.Channel()},
		args...).Slice()
	if err != nil {
		return "", false, fmt.Errorf("commit releases of run %s: %w", l.RunID, err)
	}
	st, _ := res[0].(string)
	if st == "lost" {
		// The lease expired, or Redis lost everything: then mark the run
		// lost, so status says so.
		_ = markLostScript.Run(ctx, s.rdb, []string{s.runKey(l.RunID), s.currentKey(), s.lostKey()},
			l.RunID, s.retentionSeconds()).Err()
		return "", false, fmt.Errorf("commit releases of run %s: %w", l.RunID, ErrLeaseLost)
	}
	waiting, _ := res[1].(int64)
	l.Next, l.Last = next, last
	return State(st), waiting == 1, nil
}

// Release gives the lease up. It uses its own short context so that a
// cancelled caller still lets go at once instead of after the TTL.
func (l *Lease) Release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, l.store.rdb, []string{l.store.leaseKey(l.RunID)}, l.token).Err(); err != nil {
		return fmt.Errorf("release lease of run %s: %w", l.RunID, err)
	}
	return nil
}
