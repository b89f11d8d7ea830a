package release

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

const amqpURL = "amqp://guest:guest@127.0.0.1:5672/"

type fixture struct {
	store *run.Store
	pub   *queue.Publisher
	top   queue.Topology
	conn  *amqp.Connection
}

// newFixture gives a test its own Redis prefix and its own queues, on the
// real Redis and RabbitMQ, and removes them afterwards.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("these tests need Redis at 127.0.0.1:6379: %v", err)
	}
	prefix := "test:release:" + id + ":"
	top := queue.Topology{Jobs: "test.release." + id, DeliveryLimit: 5}
	pub, err := queue.Dial(amqpURL, top)
	if err != nil {
		t.Fatalf("these tests need RabbitMQ at 127.0.0.1:5672: %v", err)
	}
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pub.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(top.Jobs, false, false, false)
			ch.QueueDelete(top.Dead(), false, false, false)
		}
		conn.Close()
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return &fixture{store: run.NewStore(rdb, prefix, time.Hour), pub: pub, top: top, conn: conn}
}

// drain reads every message in the jobs queue until it stays empty for idle.
func (f *fixture) drain(t *testing.T, idle time.Duration) []queue.Job {
	t.Helper()
	ch, err := f.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var jobs []queue.Job
	for {
		m, ok, err := ch.Get(f.top.Jobs, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(idle)
			if m, ok, _ = ch.Get(f.top.Jobs, true); !ok {
				return jobs
			}
		}
		j, err := queue.DecodeJob(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
}

// checkRate asserts the bounds of PRODUCT.md on the release instants: any
// two consecutive releases at least 60s/y apart, hence at most
// ceil(y*s/60) in any window of s seconds.
func checkRate(t *testing.T, jobs []queue.Job, y int64) {
	t.Helper()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ReleasedAt.Before(jobs[j].ReleasedAt) })
	interval := time.Duration(float64(time.Minute) / float64(y))
	for i := 1; i < len(jobs); i++ {
		if gap := jobs[i].ReleasedAt.Sub(jobs[i-1].ReleasedAt); gap < interval-time.Microsecond {
			t.Fatalf("jobs %d and %d released %v apart, less than 60s/y = %v", jobs[i-1].JobID, jobs[i].JobID, gap, interval)
		}
	}
	limit := int(math.Ceil(float64(y)/60)) + 1
	for i := range jobs {
		n := 0
		for j := i; j < len(jobs) && jobs[j].ReleasedAt.Sub(jobs[i].ReleasedAt) < time.Second; j++ {
			n++
		}
		if n > limit {
			t.Fatalf("%d jobs released within 1s from job %d; at most %d allowed", n, jobs[i].JobID, limit)
		}
	}
}

func checkEachOnce(t *testing.T, jobs []queue.Job, runID string, x int64) {
	t.Helper()
	seen := map[int64]int{}
	for _, j := range jobs {
		if j.RunID != runID {
			t.Fatalf("job of another run %s", j.RunID)
		}
		seen[j.JobID]++
	}
	for id := int64(0); id < x; id++ {
		if seen[id] != 1 {
			t.Fatalf("job %d released %d times, want once (released %d jobs in all)", id, seen[id], len(jobs))
		}
	}
	if int64(len(seen)) != x {
		t.Fatalf("released %d distinct jobs, want %d", len(seen), x)
	}
}

var quiet = slog.New(slog.DiscardHandler)

// cronTicks fires a tick at each of the given period boundaries from the
// next one on, as cron would, and returns what each did once all are done.
func cronTicks(t *testing.T, f *fixture, cfg Config, periods []int) []Result {
	t.Helper()
	first := time.Now().Truncate(cfg.Period).Add(cfg.Period)
	results := make([]Result, len(periods))
	var wg sync.WaitGroup
	for k, i := range periods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(first.Add(time.Duration(i) * cfg.Period)))
			res, err := Tick(context.Background(), f.store, f.pub, cfg, quiet)
			if err != nil {
				t.Error(err)
			}
			results[k] = res
		}()
	}
	wg.Wait()
	return results
}

func TestTickReleasesEveryJobOnceAtTheRate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 20, 1200)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Tick(ctx, f.store, f.pub, Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if res.Released != 20 || res.Reason != ReasonAllOut {
		t.Fatalf("tick = %+v, want 20 released, all out", res)
	}
	jobs := f.drain(t, 200*time.Millisecond)
	checkEachOnce(t, jobs, r.ID, 20)
	checkRate(t, jobs, 1200)
	got, _ := f.store.Get(ctx, r.ID)
	if got.Enqueued != 20 {
		t.Fatalf("enqueued = %d, want 20", got.Enqueued)
	}
	hist, _ := f.store.ReleasesPerSecond(ctx, r.ID)
	var sum int64
	for _, n := range hist {
		sum += n
	}
	if sum != 20 {
		t.Fatalf("release histogram sums to %d, want 20", sum)
	}
}

func TestConcurrentTicksNeverExceedTheRate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 30, 600)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]Result, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Tick(ctx, f.store, f.pub, Config{Wait: 500 * time.Millisecond}, quiet)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	holders := 0
	for _, res := range results {
		if res.Released > 0 {
			holders++
		}
	}
	if holders != 1 {
		t.Fatalf("%d ticks released jobs, want exactly 1: %+v", holders, results)
	}
	jobs := f.drain(t, 200*time.Millisecond)
	checkEachOnce(t, jobs, r.ID, 30)
	checkRate(t, jobs, 600)
}

func TestStopEndsReleasesBeforeItAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 1000, 600)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Result)
	go func() {
		res, err := Tick(ctx, f.store, f.pub, Config{}, quiet)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	time.Sleep(700 * time.Millisecond)
	stopped, err := f.store.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	res := <-done
	if res.Reason != ReasonStopped {
		t.Fatalf("tick ended with %q, want stopped", res.Reason)
	}
	jobs := f.drain(t, 200*time.Millisecond)
	for _, j := range jobs {
		if j.ReleasedAt.After(answered) {
			t.Fatalf("job %d released at %v, after stop answered at %v", j.JobID, j.ReleasedAt, answered)
		}
	}
	if int64(len(jobs)) != stopped.Enqueued || len(jobs) == 0 || len(jobs) >= 1000 {
		t.Fatalf("%d jobs in the queue, stop reported %d enqueued", len(jobs), stopped.Enqueued)
	}
	checkRate(t, jobs, 600)
	_ = r
}

func TestNextTickTakesOverAtTheBoundary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 40, 1200) // 2 s of releases
	if err != nil {
		t.Fatal(err)
	}
	// Ticks every 500ms, as cron would every minute: each hands over to the next.
	cfg := Config{Period: 500 * time.Millisecond, MinRun: 100 * time.Millisecond, Grace: 300 * time.Millisecond, Wait: 2 * time.Second}
	handovers := 0
	for _, res := range cronTicks(t, f, cfg, []int{0, 1, 2, 3, 4, 5}) {
		if res.Reason == ReasonHandover {
			handovers++
		}
	}
	if handovers == 0 {
		t.Fatal("no tick handed over to the next")
	}
	jobs := f.drain(t, 200*time.Millisecond)
	checkEachOnce(t, jobs, r.ID, 40)
	checkRate(t, jobs, 1200)
}

// TestSkippedTickLeavesAPauseNotABurst: when cron skips a period, the tick
// with no successor ends shortly after its boundary, releases pause until
// the next tick, and that tick spaces its first release from the last real
// one: no catch-up burst, every job once.
func TestSkippedTickLeavesAPauseNotABurst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 40, 1200) // 2 s of releases
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Period: 500 * time.Millisecond, MinRun: 100 * time.Millisecond, Grace: 100 * time.Millisecond, Wait: 2 * time.Second}
	cronTicks(t, f, cfg, []int{0, 1, 3, 4, 5, 6, 7, 8, 9}) // period 2 is skipped
	jobs := f.drain(t, 200*time.Millisecond)
	checkEachOnce(t, jobs, r.ID, 40)
	checkRate(t, jobs, 1200)
	// The skipped period shows as one long gap: from the end of tick 1
	// (its boundary plus Grace) to the start of tick 3.
	var longest time.Duration
	for i := 1; i < len(jobs); i++ {
		longest = max(longest, jobs[i].ReleasedAt.Sub(jobs[i-1].ReleasedAt))
	}
	if want := cfg.Period - cfg.Grace - 100*time.Millisecond; longest < want {
		t.Errorf("longest gap between releases %v, want a pause of at least %v where cron skipped a period", longest, want)
	}
}

func TestDeadHolderIsReplacedAfterItsLease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 10, 6000)
	if err != nil {
		t.Fatal(err)
	}
	// A holder that died: it took the lease and never came back.
	if _, err := f.store.Acquire(ctx, r.ID, 300*time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	res, err := Tick(ctx, f.store, f.pub, Config{Wait: 3 * time.Second}, quiet)
	if err != nil || res.Released != 10 {
		t.Fatalf("tick after a dead holder = %+v, %v; want all 10 released", res, err)
	}
	checkEachOnce(t, f.drain(t, 200*time.Millisecond), r.ID, 10)
}

func TestNoRunningRunReleasesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res, err := Tick(context.Background(), f.store, f.pub, Config{}, quiet)
	if err != nil || res.Reason != ReasonIdle || res.Released != 0 {
		t.Fatalf("tick with no run = %+v, %v", res, err)
	}
}

// flakyPublisher fails its first batches, as a publisher whose broker went
// away does, then publishes through the real one.
type flakyPublisher struct {
	real  Publisher
	mu    sync.Mutex
	fails int
}

func (p *flakyPublisher) Batch(ctx context.Context, n int, stamp func(int) (queue.Job, bool)) (int, error) {
	p.mu.Lock()
	fail := p.fails > 0
	p.fails--
	p.mu.Unlock()
	if fail {
		// A job stamped and published, then the connection died before
		// its confirm: published again later, which processing absorbs.
		stamp(0)
		return 0, errors.New("connection closed (simulated broker restart)")
	}
	return p.real.Batch(ctx, n, stamp)
}

// A tick whose publishes fail for a while (the broker restarts) tries again
// and releases every job itself, instead of ending and leaving the run to
// the next cron minute.
func TestTickSurvivesFailingPublishes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.store.Create(ctx, 20, 1200)
	if err != nil {
		t.Fatal(err)
	}
	pub := &flakyPublisher{real: f.pub, fails: 5}
	res, err := Tick(ctx, f.store, pub, Config{}, quiet)
	if err != nil {
		t.Fatalf("tick ended with %v after %d released; want it to publish again", err, res.Released)
	}
	if res.Released != 20 || res.Reason != ReasonAllOut {
		t.Fatalf("tick = %+v, want 20 released, all out", res)
	}
	jobs := f.drain(t, 200*time.Millisecond)
	checkEachOnce(t, jobs, r.ID, 20)
	checkRate(t, jobs, 1200)
}
