package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newTestStore returns a Store on real Redis under a prefix of its own, and
// removes the test's keys afterwards. Tests fail, not skip, without Redis.
// Benchmarks use it too, with connections enough for RunParallel.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 64})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("these tests need Redis at 127.0.0.1:6379 (make services): %v", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "test:" + t.Name() + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return NewStore(rdb, prefix, time.Hour)
}

func TestCreateStopStatus(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()

	if r, err := s.Current(ctx); err != nil || r.State != Idle || r.Processed != 0 {
		t.Fatalf("Current with no run = %+v, %v; want idle", r, err)
	}
	if _, err := s.Stop(ctx); !errors.Is(err, ErrNoRun) {
		t.Fatalf("Stop with no run: err = %v, want ErrNoRun", err)
	}
	r, err := s.Create(ctx, 100, 60)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Running || r.XTotal != 100 || r.YPerMinute != 60 || r.StartedAt == nil || r.ID == "" {
		t.Fatalf("created run = %+v", r)
	}
	_, err = s.Create(ctx, 5, 5)
	var running *RunningError
	if !errors.As(err, &running) || running.Run.ID != r.ID {
		t.Fatalf("second Create: err = %v, want RunningError carrying %s", err, r.ID)
	}
	stopped, err := s.Stop(ctx)
	if err != nil || stopped.State != Stopped || stopped.FinishedAt == nil {
		t.Fatalf("Stop = %+v, %v", stopped, err)
	}
	again, err := s.Stop(ctx)
	if err != nil || again.State != Stopped || again.ID != r.ID {
		t.Fatalf("Stop of a stopped run = %+v, %v; want it unchanged", again, err)
	}
	cur, err := s.Current(ctx)
	if err != nil || cur.ID != r.ID || cur.State != Stopped {
		t.Fatalf("Current after stop = %+v, %v", cur, err)
	}
	if _, err := s.Create(ctx, 5, 5); err != nil {
		t.Fatalf("Create after stop: %v", err)
	}
}

func TestCreateRejectsOutOfRange(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	for _, c := range []struct{ x, y int64 }{{0, 1}, {1, 0}, {MaxX + 1, 1}, {1, MaxY + 1}, {-1, 5}} {
		if _, err := s.Create(context.Background(), c.x, c.y); err == nil {
			t.Errorf("Create(%d, %d) succeeded", c.x, c.y)
		}
	}
	if r, _ := s.Current(context.Background()); r.State != Idle {
		t.Fatalf("a rejected Create changed state: %+v", r)
	}
}

// TestJobsOutsideTheRunAreRefused: a message naming job x or beyond (forged,
// or corrupt) must not count, complete the run or grow its bitmap.
func TestJobsOutsideTheRunAreRefused(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, err := s.Create(ctx, 2, 600)
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range []int64{2, 1000, 1 << 31} {
		if _, _, err := s.Begin(ctx, r.ID, job, false); !errors.Is(err, ErrNoSuchJob) {
			t.Errorf("Begin job %d of a run of 2: %v, want ErrNoSuchJob", job, err)
		}
		if ok, err := s.Account(ctx, r.ID, job, Processed); ok || !errors.Is(err, ErrNoSuchJob) {
			t.Errorf("Account job %d of a run of 2: %v %v, want ErrNoSuchJob", job, ok, err)
		}
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Running || got.Processed != 0 || got.Done != 0 {
		t.Errorf("after forged jobs the run is %+v, want running with nothing counted", got)
	}
	if n, _ := s.rdb.StrLen(ctx, s.doneKey(r.ID)).Result(); n > 1 {
		t.Errorf("the bitmap grew to %d bytes", n)
	}
	// The jobs the run has still count.
	if ok, err := s.Account(ctx, r.ID, 1, Processed); !ok || err != nil {
		t.Errorf("Account job 1 of a run of 2: %v %v", ok, err)
	}
}

func TestAccountCountsEachJobOnce(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, err := s.Create(ctx, 50, 600)
	if err != nil {
		t.Fatal(err)
	}
	// Every job accounted 8 times at once, as redeliveries would.
	var wg sync.WaitGroup
	var mu sync.Mutex
	counted := 0
	for job := int64(0); job < 50; job++ {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outcome := Processed
				if job%10 == 0 {
					outcome = Failed
				}
				ok, err := s.Account(ctx, r.ID, job, outcome)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					counted++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	got, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if counted != 50 || got.Processed != 45 || got.Failed != 5 || got.State != Completed || got.FinishedAt == nil {
		t.Fatalf("counted %d; run = %+v; want 45 processed, 5 failed, completed", counted, got)
	}
	if _, done, err := s.Begin(ctx, r.ID, 7, false); err != nil || !done {
		t.Fatalf("Begin of an accounted job: done=%v err=%v", done, err)
	}
}

func TestCancelledJobsDoNotComplete(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, _ := s.Create(ctx, 3, 60)
	if _, err := s.Account(ctx, r.ID, 0, Processed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, done, err := s.Begin(ctx, r.ID, 1, false)
	if err != nil || st != Stopped || done {
		t.Fatalf("Begin after stop = %v %v %v", st, done, err)
	}
	for range 2 {
		if _, err := s.Account(ctx, r.ID, 1, Cancelled); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get(ctx, r.ID)
	if got.State != Stopped || got.Cancelled != 1 || got.Processed != 1 || got.Done != 2 {
		t.Fatalf("run = %+v; want stopped, 1 processed, 1 cancelled", got)
	}
}

func TestUnknownRunIsAnError(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	if _, _, err := s.Begin(ctx, "r-gone", 1, false); !errors.Is(err, ErrUnknownRun) {
		t.Fatalf("Begin: %v, want ErrUnknownRun", err)
	}
	if _, err := s.Account(ctx, "r-gone", 1, Processed); !errors.Is(err, ErrUnknownRun) {
		t.Fatalf("Account: %v, want ErrUnknownRun", err)
	}
	// Accounting must not have created anything for the unknown run.
	if n, _ := s.rdb.Exists(ctx, s.doneKey("r-gone"), s.runKey("r-gone")).Result(); n != 0 {
		t.Fatalf("Account of an unknown run created %d keys", n)
	}
}

func TestEventsCarryTheRun(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	sub := s.rdb.Subscribe(ctx, s.Channel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Create(ctx, 2, 60)
	if _, err := s.Account(ctx, r.ID, 0, Processed); err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 1}
	for i, processed := range want {
		select {
		case m := <-sub.Channel():
			got, err := DecodeEvent([]byte(m.Payload))
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != r.ID || got.Processed != processed || got.XTotal != 2 {
				t.Fatalf("event %d = %+v, want processed %d", i, got, processed)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never came", i)
		}
	}
}

func TestLeaseIsExclusive(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, _ := s.Create(ctx, 10, 60)
	l, err := s.Acquire(ctx, r.ID, time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, r.ID, time.Minute, true); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire: %v, want ErrBusy", err)
	}
	st, waiting, err := l.Commit(ctx, 3, time.Now(), 3, map[int64]int64{time.Now().Unix(): 3})
	if err != nil || st != Running || !waiting {
		t.Fatalf("Commit = %v %v %v; want running with a successor waiting", st, waiting, err)
	}
	if got, _ := s.Get(ctx, r.ID); got.Enqueued != 3 {
		t.Fatalf("enqueued = %d, want 3", got.Enqueued)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := s.Acquire(ctx, r.ID, time.Minute, false)
	if err != nil || l2.Next != 3 || l2.Last.IsZero() {
		t.Fatalf("Acquire after release = %+v, %v; want next 3", l2, err)
	}
	// The first holder's lease is gone: its commits must fail.
	if _, _, err := l.Commit(ctx, 4, time.Now(), 1, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale Commit: %v, want ErrLeaseLost", err)
	}
}

// After Redis lost its data, a job of the lost run marks it, and Current
// and Stop name the lost run instead of showing an idle state with zero
// counters; a new run clears the mark.
func TestLostRunIsReportedNotReset(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, err := s.Create(ctx, 10, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, r.ID, 0, Processed); err != nil {
		t.Fatal(err)
	}
	// Redis restarts without persistence: every key of the prefix is gone.
	keys, _ := s.rdb.Keys(ctx, s.prefix+"*").Result()
	s.rdb.Del(ctx, keys...)
	if _, _, err := s.Begin(ctx, r.ID, 1, false); !errors.Is(err, ErrUnknownRun) {
		t.Fatalf("Begin of a job of the lost run: %v, want ErrUnknownRun", err)
	}
	var lost *LostError
	if got, err := s.Current(ctx); !errors.As(err, &lost) || lost.RunID != r.ID || !errors.Is(err, ErrLost) {
		t.Fatalf("Current after the loss = %+v, %v; want a LostError naming %s", got, err, r.ID)
	}
	if _, err := s.Stop(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("Stop after the loss: %v, want ErrLost", err)
	}
	if _, err := s.Account(ctx, r.ID, 1, Processed); !errors.Is(err, ErrUnknownRun) {
		t.Fatalf("Account after the loss: %v, want ErrUnknownRun", err)
	}
	if n, _ := s.rdb.Exists(ctx, s.runKey(r.ID), s.doneKey(r.ID)).Result(); n != 0 {
		t.Fatalf("the lost run was recreated from zero (%d keys)", n)
	}
	r2, err := s.Create(ctx, 5, 60)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Current(ctx); err != nil || got.ID != r2.ID {
		t.Fatalf("Current after a new run = %+v, %v", got, err)
	}
}

// A job requeued from the dead-letter queue (retry) that was counted as
// failed is counted again: failed goes down and processed up, once, however
// often the retry is delivered. A retry of a processed job changes nothing.
func TestRetryTakesAFailureBack(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, _ := s.Create(ctx, 2, 60)
	if _, err := s.Account(ctx, r.ID, 0, Processed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, r.ID, 1, Failed); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, r.ID); got.State != Completed || got.Failed != 1 {
		t.Fatalf("run = %+v, want completed with 1 failed", got)
	}
	for i := range 2 {
		st, done, err := s.Begin(ctx, r.ID, 1, true)
		if err != nil || st != Completed || done != (i == 1) {
			t.Fatalf("retry %d of the failed job: Begin = %v %v %v", i, st, done, err)
		}
		if i == 0 {
			if counted, err := s.Account(ctx, r.ID, 1, Processed); err != nil || !counted {
				t.Fatalf("Account of the retried job: %v %v", counted, err)
			}
		}
	}
	if _, done, err := s.Begin(ctx, r.ID, 0, true); err != nil || !done {
		t.Fatalf("retry of a processed job: done=%v err=%v, want done", done, err)
	}
	got, _ := s.Get(ctx, r.ID)
	if got.Processed != 2 || got.Failed != 0 || got.Done != 2 || got.State != Completed {
		t.Fatalf("run after the retry = %+v, want 2 processed, 0 failed, completed", got)
	}
}

// Every key of a run that ended expires, including the bitmap of a run
// stopped before any job was accounted for (its first bit is set after the
// stop), so Redis does not grow with every run.
func TestKeysOfAnEndedRunExpire(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	r, _ := s.Create(ctx, 3, 60)
	if _, err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for job, outcome := range []Outcome{Cancelled, Failed} {
		if _, err := s.Account(ctx, r.ID, int64(job), outcome); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{s.runKey(r.ID), s.doneKey(r.ID), s.failedKey(r.ID)} {
		if ttl := s.rdb.TTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %s of a stopped run has TTL %v, want it to expire", k, ttl)
		}
	}
}
