package relay

import (
	"slices"
	"time"

	"optio.dev/optio/run"
)

// State is the run as browsers receive it: the API's run object plus what
// the relay measures.
type State struct {
	run.Run
	// MeasuredPerMinute is the jobs processed per minute over the last
	// minute of the run (ending now while it runs, at its end once it has
	// ended), measured from the events the relay saw; over a shorter span
	// when the relay has seen less of the run. Null until measurable.
	MeasuredPerMinute *float64 `json:"measuredPerMinute"`
	// ETASeconds is the estimated time until every job is accounted for;
	// null unless the run is running.
	ETASeconds *float64 `json:"etaSeconds"`
}

// Throughput is the run's processed jobs per time bucket, for the chart.
// Bucket i covers [Start + i*BucketSeconds, Start + (i+1)*BucketSeconds).
type Throughput struct {
	// Start is the first bucket's start, unix milliseconds.
	Start int64 `json:"start"`
	// BucketSeconds is the width of a bucket; it doubles as a run grows
	// so that there are never more than maxBuckets buckets.
	BucketSeconds int64 `json:"bucketSeconds"`
	// Processed holds the jobs processed in each bucket.
	Processed []int64 `json:"processed"`
}

// Message is one WebSocket message to a browser. Every message is
// complete, so a browser that missed some (or reconnects) is caught up by
// the next one.
type Message struct {
	// Type is "state".
	Type string `json:"type"`
	// Seq increases with every change the relay publishes; it restarts at 1
	// when the relay restarts.
	Seq uint64 `json:"seq"`
	// SentAt is when the relay encoded the message, unix milliseconds.
	SentAt int64 `json:"sentAt"`
	Run    State `json:"run"`
	// Throughput is the run's throughput since the relay first saw it.
	Throughput Throughput `json:"throughput"`
}

// maxBuckets bounds the chart's series, and so every message's size.
const maxBuckets = 240

// rateWindow is the span the measured rate is taken over.
const rateWindow = 60 * time.Second

// etaMinSpan is the least span of measurement the ETA relies on; before
// that it is projected from the configured rate alone.
const etaMinSpan = 10 * time.Second

// meter follows the counters of one run over time: a bounded series of
// processed jobs per bucket for the chart, and per-second counts of the
// last minute for the measured rate.
type meter struct {
	runID     string
	processed int64     // last processed count seen
	since     time.Time // from when the relay knows the run's throughput
	start     time.Time // first bucket's start (whole seconds)
	width     int64     // bucket width in seconds
	buckets   []int64
	recent    [64]secondCount // ring of per-second counts, index sec%64
}

type secondCount struct {
	sec int64
	n   int64
}

// newMeter starts following r, first seen at now. When r has processed
// nothing yet the relay has seen it from its start. Otherwise (the relay
// started in mid-run) the jobs processed before now are attributed to the
// seconds the run's release histogram (released, unix second -> jobs)
// says they were released in, oldest first, as jobs are processed moments
// after their release; without a histogram they belong to no time.
func newMeter(r run.Run, now time.Time, released map[int64]int64) *meter {
	m := &meter{runID: r.ID, processed: r.Processed, since: now, width: 1}
	if r.StartedAt != nil && r.StartedAt.Before(now) && (r.Processed == 0 || len(released) > 0) {
		m.since = *r.StartedAt
	}
	m.start = m.since.Truncate(time.Second)
	if r.Processed > 0 && len(released) > 0 {
		secs := make([]int64, 0, len(released))
		for sec := range released {
			secs = append(secs, sec)
		}
		slices.Sort(secs)
		left := r.Processed
		for _, sec := range secs {
			n := min(released[sec], left)
			if n > 0 {
				m.add(sec, n)
			}
			if left -= n; left == 0 {
				break
			}
		}
	}
	return m
}

// observe records that the run has processed n jobs as of now.
func (m *meter) observe(n int64, now time.Time) {
	d := n - m.processed
	if d <= 0 {
		return
	}
	m.processed = n
	m.add(now.Unix(), d)
}

// add counts d jobs processed in unix second sec.
func (m *meter) add(sec, d int64) {
	slot := &m.recent[sec%int64(len(m.recent))]
	if slot.sec != sec {
		*slot = secondCount{sec: sec}
	}
	slot.n += d

	i := (sec - m.start.Unix()) / m.width
	if i < 0 {
		i = 0
	}
	for i >= maxBuckets {
		m.merge()
		i = (sec - m.start.Unix()) / m.width
	}
	for int64(len(m.buckets)) <= i {
		m.buckets = append(m.buckets, 0)
	}
	m.buckets[i] += d
}

// merge halves the number of buckets by doubling their width.
func (m *meter) merge() {
	out := m.buckets[:0]
	for i := 0; i < len(m.buckets); i += 2 {
		v := m.buckets[i]
		if i+1 < len(m.buckets) {
			v += m.buckets[i+1]
		}
		out = append(out, v)
	}
	m.buckets = out
	m.width *= 2
}

// perMinute is the processing rate over the minute ending at end, and the
// span it was measured over: shorter than a minute when the relay has seen
// less of the run. Nil when it has seen less than a second.
func (m *meter) perMinute(end time.Time) (*float64, time.Duration) {
	span := end.Sub(m.since)
	if span < time.Second {
		return nil, span
	}
	// Count the whole seconds in (end-span, end]; when everything seen is
	// in the span, count the second the relay started seeing too.
	from := end.Add(-rateWindow).Unix()
	if span <= rateWindow {
		span = max(span, time.Second)
		from = m.since.Unix() - 1
	} else {
		span = rateWindow
	}
	var sum int64
	for _, c := range m.recent {
		if c.sec > from && c.sec <= end.Unix() {
			sum += c.n
		}
	}
	v := float64(sum) / span.Minutes()
	return &v, span
}

func (m *meter) throughput() Throughput {
	return Throughput{
		Start:         m.start.UnixMilli(),
		BucketSeconds: m.width,
		Processed:     append(make([]int64, 0, len(m.buckets)), m.buckets...),
	}
}

// derive adds the measured rate and the ETA to r as of now.
func (m *meter) derive(r run.Run, now time.Time) State {
	s := State{Run: r}
	if r.ID == "" {
		return s // idle: nothing to measure
	}
	end := now
	if r.State != run.Running && r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	var span time.Duration
	s.MeasuredPerMinute, span = m.perMinute(end)
	if r.State == run.Running {
		// A rate measured over a few seconds is too noisy to project from.
		measured := s.MeasuredPerMinute
		if span < etaMinSpan {
			measured = nil
		}
		s.ETASeconds = eta(r, measured)
	}
	return s
}

// eta estimates the seconds until every job of a running run is
// accounted for: the jobs not yet released still need (x - enqueued) / y
// minutes whatever happens, and all remaining jobs need remaining /
// measured minutes at the measured pace. The larger of the two wins.
func eta(r run.Run, measured *float64) *float64 {
	if r.YPerMinute <= 0 {
		return nil
	}
	sec := float64(max(r.XTotal-r.Enqueued, 0)) / float64(r.YPerMinute) * 60
	if measured != nil && *measured > 0 {
		sec = max(sec, float64(r.Remaining) / *measured * 60)
	}
	return &sec
}

// rank orders states: an ended run never runs again.
func rank(s run.State) int {
	switch s {
	case run.Running:
		return 1
	case run.Stopped, run.Completed:
		return 2
	}
	return 0
}

// supersedes tells whether next should replace cur as the state shown.
// Events arrive in the order Redis applied them, but a reread snapshot may
// race with them, and a stopped run keeps emitting events while its queued
// jobs are cancelled even after a newer run started. So: the same run
// never goes back (state, enqueued, processed, cancelled, or the jobs
// accounted for in all), another run must have started later, and "no run"
// (idle) replaces only a run that has ended. failed alone may go down: a
// job retried from the dead-letter queue (optio-dlq requeue) moves from
// failed to processed, and the step in between, with the failure taken
// back and the job not yet counted again, is skipped.
func supersedes(next, cur run.Run) bool {
	done := func(r run.Run) int64 { return r.Processed + r.Failed + r.Cancelled }
	switch {
	case next.ID == cur.ID:
		return !(rank(next.State) < rank(cur.State) || next.Enqueued < cur.Enqueued ||
			next.Processed < cur.Processed || next.Cancelled < cur.Cancelled || done(next) < done(cur))
	case next.ID == "":
		return cur.State != run.Running
	case cur.ID == "":
		return true
	case next.StartedAt == nil || cur.StartedAt == nil:
		return next.StartedAt != nil
	default:
		return next.StartedAt.After(*cur.StartedAt) ||
			(next.StartedAt.Equal(*cur.StartedAt) && next.ID > cur.ID)
	}
}

// same tells whether two states of the same run show the same thing.
func same(a, b run.Run) bool {
	return a.ID == b.ID && a.State == b.State && a.XTotal == b.XTotal && a.YPerMinute == b.YPerMinute &&
		a.Enqueued == b.Enqueued && a.Processed == b.Processed && a.Failed == b.Failed &&
		a.Cancelled == b.Cancelled && msOf(a.UpdatedAt) == msOf(b.UpdatedAt) && msOf(a.FinishedAt) == msOf(b.FinishedAt)
}

func msOf(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}
