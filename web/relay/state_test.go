package relay

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"optio.dev/optio/run"
)

func at(sec float64) time.Time {
	return time.Unix(1_800_000_000, 0).Add(time.Duration(sec * float64(time.Second)))
}

func ptr[T any](v T) *T { return &v }

func TestSupersedes(t *testing.T) {
	t.Parallel()
	a := run.Run{ID: "a", State: run.Running, StartedAt: ptr(at(0)), Enqueued: 10, Processed: 5}
	b := run.Run{ID: "b", State: run.Running, StartedAt: ptr(at(100))}
	tests := []struct {
		name      string
		next, cur run.Run
		want      bool
	}{
		{"nothing held", a, run.Run{}, true},
		{"same run, more processed", with(a, func(r *run.Run) { r.Processed = 6 }), a, true},
		{"same run, fewer processed", with(a, func(r *run.Run) { r.Processed = 4 }), a, false},
		{"same run, fewer enqueued", with(a, func(r *run.Run) { r.Enqueued = 9 }), a, false},
		{"same run, stopped", with(a, func(r *run.Run) { r.State = run.Stopped }), a, true},
		{"same run, running again after stop", a, with(a, func(r *run.Run) { r.State = run.Stopped }), false},
		{"same run, cancelled counted after stop",
			with(a, func(r *run.Run) { r.State = run.Stopped; r.Cancelled = 3 }),
			with(a, func(r *run.Run) { r.State = run.Stopped }), true},
		// optio-dlq requeue: a retry takes a failure back, then counts
		// the job processed; the dashboard must follow (it stuck at the
		// failures before).
		{"same run, a failure retried and processed",
			with(a, func(r *run.Run) { r.State = run.Completed; r.Processed = 6; r.Failed = 4 }),
			with(a, func(r *run.Run) { r.State = run.Completed; r.Processed = 5; r.Failed = 5 }), true},
		{"same run, a failure taken back, not yet processed",
			with(a, func(r *run.Run) { r.State = run.Completed; r.Processed = 5; r.Failed = 4 }),
			with(a, func(r *run.Run) { r.State = run.Completed; r.Processed = 5; r.Failed = 5 }), false},
		{"same run, an older snapshot with more failed",
			with(a, func(r *run.Run) { r.State = run.Completed; r.Processed = 5; r.Failed = 5 }),
			with(a, func(r *run.Run) { r.State = run.Completed; r.Processed = 6; r.Failed = 4 }), false},
		{"newer run", b, with(a, func(r *run.Run) { r.State = run.Stopped }), true},
		{"older run's late event", with(a, func(r *run.Run) { r.State = run.Stopped; r.Cancelled = 9 }), b, false},
		{"idle after an ended run", run.IdleRun(), with(a, func(r *run.Run) { r.State = run.Completed }), true},
		{"idle while running", run.IdleRun(), a, false},
		{"a run after idle", a, run.IdleRun(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := supersedes(tt.next, tt.cur); got != tt.want {
				t.Errorf("supersedes = %v, want %v", got, tt.want)
			}
		})
	}
}

func with(r run.Run, f func(*run.Run)) run.Run { f(&r); return r }

func TestMeterRateAndETA(t *testing.T) {
	t.Parallel()
	start := at(0)
	r := run.Run{ID: "r", State: run.Running, XTotal: 1000, YPerMinute: 120, StartedAt: &start}
	m := newMeter(r, at(0.2), nil)
	// 2 jobs a second for 30 seconds.
	for s := 1; s <= 30; s++ {
		m.observe(int64(2*s), at(float64(s)))
	}
	r.Processed, r.Enqueued = 60, 62
	r.Remaining = 940
	got := m.derive(r, at(30))
	if got.MeasuredPerMinute == nil || *got.MeasuredPerMinute != 120 {
		t.Fatalf("measured = %v, want 120/min over the 30 s seen", deref(got.MeasuredPerMinute))
	}
	// (1000-62)/120 min = 469 s at the release pace; 940/120 min = 470 s at the measured pace.
	if got.ETASeconds == nil || *got.ETASeconds != 470 {
		t.Fatalf("eta = %v, want 470", deref(got.ETASeconds))
	}
	// A minute later with nothing processed the last minute measures 0.
	late := m.derive(r, at(91))
	if late.MeasuredPerMinute == nil || *late.MeasuredPerMinute != 0 {
		t.Fatalf("measured a minute after the last job = %v, want 0", deref(late.MeasuredPerMinute))
	}
	// An ended run is measured over its own last minute.
	r.State, r.FinishedAt = run.Completed, ptr(at(30))
	done := m.derive(r, at(500))
	if done.MeasuredPerMinute == nil || *done.MeasuredPerMinute != 120 || done.ETASeconds != nil {
		t.Fatalf("ended run: measured %v eta %v, want 120 and none", deref(done.MeasuredPerMinute), deref(done.ETASeconds))
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestMeterNotMeasurableAtFirst(t *testing.T) {
	t.Parallel()
	r := run.Run{ID: "r", State: run.Running, XTotal: 10, YPerMinute: 60, Processed: 4}
	m := newMeter(r, at(0), nil)
	if got := m.derive(r, at(0.5)).MeasuredPerMinute; got != nil {
		t.Fatalf("measured after half a second = %v, want none", *got)
	}
	// The 4 jobs processed before the relay saw the run belong to no bucket.
	m.observe(5, at(1.5))
	if diff := cmp.Diff([]int64{0, 1}, m.throughput().Processed); diff != "" {
		t.Fatalf("buckets (-want +got):\n%s", diff)
	}
}

func TestMeterBucketsStayBounded(t *testing.T) {
	t.Parallel()
	start := at(0)
	r := run.Run{ID: "r", State: run.Running, XTotal: 1e6, YPerMinute: 60, StartedAt: &start}
	m := newMeter(r, at(0), nil)
	const seconds = 10_000
	for s := 1; s <= seconds; s++ {
		m.observe(int64(s), at(float64(s)))
	}
	tp := m.throughput()
	if len(tp.Processed) > maxBuckets {
		t.Fatalf("%d buckets, want at most %d", len(tp.Processed), maxBuckets)
	}
	var sum int64
	for _, n := range tp.Processed {
		sum += n
	}
	if sum != seconds {
		t.Fatalf("buckets hold %d jobs, want %d", sum, seconds)
	}
	if tp.BucketSeconds*int64(len(tp.Processed)) < seconds {
		t.Fatalf("%d buckets of %d s do not cover %d s", len(tp.Processed), tp.BucketSeconds, seconds)
	}
}

func TestHubCoalesces(t *testing.T) {
	t.Parallel()
	now := at(0)
	h := NewHub(func() time.Time { return now })
	seq0, _, changed := h.Latest()
	if seq0 != 0 {
		t.Fatalf("empty hub has seq %d", seq0)
	}
	start := at(0)
	r := run.Run{ID: "r", State: run.Running, XTotal: 1000, YPerMinute: 60, StartedAt: &start}
	for i := int64(1); i <= 1000; i++ {
		r.Processed = i
		if !h.Update(r) {
			t.Fatalf("update %d not applied", i)
		}
	}
	select {
	case <-changed:
	default:
		t.Fatal("changed channel not closed by an update")
	}
	if h.Update(r) {
		t.Fatal("the same state applied twice")
	}
	seq, msg, _ := h.Latest()
	if seq != 1000 {
		t.Fatalf("seq = %d, want 1000", seq)
	}
	if !containsAll(string(msg), `"processed":1000`, `"type":"state"`, `"seq":1000`) {
		t.Fatalf("latest message is not the last state: %s", msg)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestMeterMidRunFromReleaseHistory(t *testing.T) {
	t.Parallel()
	start := at(0)
	s0 := start.Unix()
	r := run.Run{ID: "r", State: run.Running, XTotal: 100, YPerMinute: 600, StartedAt: &start, Processed: 25}
	released := map[int64]int64{s0: 10, s0 + 1: 10, s0 + 2: 10, s0 + 3: 10}
	m := newMeter(r, at(3.5), released)
	if diff := cmp.Diff([]int64{10, 10, 5}, m.throughput().Processed); diff != "" {
		t.Fatalf("buckets rebuilt from the release history (-want +got):\n%s", diff)
	}
	got := m.derive(r, at(3.5)).MeasuredPerMinute
	if got == nil || *got != 25/3.5*60 {
		t.Fatalf("measured = %v, want %v", deref(got), 25/3.5*60)
	}
	m.observe(26, at(4.2))
	if diff := cmp.Diff([]int64{10, 10, 5, 0, 1}, m.throughput().Processed); diff != "" {
		t.Fatalf("buckets after a live change (-want +got):\n%s", diff)
	}
}

func TestNeedsHistoryOnlyForARunShown(t *testing.T) {
	t.Parallel()
	h := NewHub(func() time.Time { return at(100) })
	a := run.Run{ID: "a", State: run.Stopped, StartedAt: ptr(at(0)), Processed: 5}
	b := run.Run{ID: "b", State: run.Running, StartedAt: ptr(at(50)), Processed: 3}
	if !h.NeedsHistory(b) {
		t.Fatal("a run met in mid-run needs its history")
	}
	h.UpdateWithHistory(b, nil)
	if h.NeedsHistory(with(b, func(r *run.Run) { r.Processed = 4 })) {
		t.Fatal("history asked again for the run followed")
	}
	if h.NeedsHistory(with(a, func(r *run.Run) { r.Cancelled = 1 })) {
		t.Fatal("history asked for an older run's late event")
	}
}
