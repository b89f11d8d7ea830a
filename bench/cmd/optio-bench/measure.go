package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"optio.dev/optio/index"
	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// throughput runs x jobs at the highest rate through the gateway and returns
// jobs per second, from the run request to the run's finishedAt, and the CPU
// each component spent.
func (b *bench) throughput(ctx context.Context, x int64) (float64, map[string]float64, error) {
	before := b.comps.snapshot()
	t0 := time.Now()
	r, err := b.start(ctx, x, run.MaxY)
	if err != nil {
		return 0, nil, err
	}
	done, err := waitRun(ctx, b.store, r.ID, 10*time.Minute, 20*time.Millisecond, func(r run.Run) bool {
		return r.State != run.Running
	})
	if err != nil {
		return 0, nil, err
	}
	cpu := cpuDelta(before, b.comps.snapshot())
	if done.State != run.Completed || done.Processed != x || done.FinishedAt == nil {
		return 0, nil, fmt.Errorf("run %s ended %s with %d processed of %d", r.ID, done.State, done.Processed, x)
	}
	if n, err := b.index.Count(ctx, r.ID); err != nil || n != x {
		return 0, nil, fmt.Errorf("run %s left %d documents of %d (%v)", r.ID, n, x, err)
	}
	took := done.FinishedAt.Sub(t0)
	return float64(x) / took.Seconds(), cpu, nil
}

// noopThroughput publishes x jobs straight to the queue of a noop stack and
// returns jobs per second, from the first publish to the connector's last
// ack (read from its metrics).
func (b *bench) noopThroughput(ctx context.Context, x int64) (float64, map[string]float64, error) {
	pub, err := queue.Dial(b.cfg.AMQPURL, queue.Topology{Jobs: b.env["OPTIO_QUEUE"], DeliveryLimit: 5})
	if err != nil {
		return 0, nil, err
	}
	defer pub.Close()
	acked0, err := connectorAcked(ctx)
	if err != nil {
		return 0, nil, err
	}
	before := b.comps.snapshot()
	t0 := time.Now()
	pubErr := make(chan error, 1)
	go func() {
		const batch = 500
		for i := int64(0); i < x; i += batch {
			n := min(batch, x-i)
			if _, err := pub.Batch(ctx, int(n), func(k int) (queue.Job, bool) {
				return queue.Job{RunID: "noop", JobID: i + int64(k), ReleasedAt: time.Now()}, true
			}); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()
	deadline := time.Now().Add(5 * time.Minute)
	var last time.Time
	for {
		n, err := connectorAcked(ctx)
		if err == nil && n-acked0 >= float64(x) {
			last = time.Now()
			break
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("noop: %v of %d acked after 5 minutes (%v)", n-acked0, x, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-pubErr; err != nil {
		return 0, nil, err
	}
	cpu := cpuDelta(before, b.comps.snapshot())
	return float64(x) / last.Sub(t0).Seconds(), cpu, nil
}

// connectorAcked reads the connector's acked-messages counter.
func connectorAcked(ctx context.Context) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:8091/metrics", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading connector metrics: %w", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "optio_connector_messages_acked_total") {
			f := strings.Fields(line)
			return strconv.ParseFloat(f[len(f)-1], 64)
		}
	}
	return 0, nil // not counted yet
}

// stopLatency starts a run at full speed, stops it once it is well under
// way and returns the milliseconds from the stop answer to the last
// increment of processed.
func (b *bench) stopLatency(ctx context.Context, x int64) (float64, error) {
	r, err := b.start(ctx, x, run.MaxY)
	if err != nil {
		return 0, err
	}
	if _, err := waitRun(ctx, b.store, r.ID, 2*time.Minute, 10*time.Millisecond, func(r run.Run) bool {
		return r.Processed >= x/4
	}); err != nil {
		return 0, err
	}
	if _, err := b.stop(ctx); err != nil {
		return 0, err
	}
	answered := time.Now()
	cur, err := b.store.Get(ctx, r.ID)
	if err != nil {
		return 0, err
	}
	lastChange := answered
	for quiet := time.Now(); time.Since(quiet) < 3*time.Second; {
		time.Sleep(2 * time.Millisecond)
		got, err := b.store.Get(ctx, r.ID)
		if err != nil {
			return 0, err
		}
		if got.Processed != cur.Processed {
			lastChange, quiet = time.Now(), time.Now()
			cur = got
		}
	}
	b.settle(ctx, r.ID)
	return float64(lastChange.Sub(answered).Microseconds()) / 1000, nil
}

// docs reads the documents of jobs 0..x-1 of a run.
func (b *bench) docs(ctx context.Context, runID string, x int64) ([]index.Doc, error) {
	out := make([]index.Doc, x)
	found := make([]bool, x)
	next := make(chan int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				d, ok, err := b.index.Get(ctx, runID, j)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					continue
				}
				out[j], found[j] = d, ok
			}
		}()
	}
	for j := range x {
		next <- j
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	var docs []index.Doc
	for j := range x {
		if found[j] {
			docs = append(docs, out[j])
		}
	}
	return docs, nil
}

// latency runs x jobs at y per minute and returns the p50 and p99 of
// release to processed, in milliseconds, from the documents.
func (b *bench) latency(ctx context.Context, x, y int64) (p50, p99 float64, err error) {
	r, err := b.start(ctx, x, y)
	if err != nil {
		return 0, 0, err
	}
	wait := time.Duration(float64(x)/float64(y)*float64(time.Minute)) + time.Minute
	if _, err := waitRun(ctx, b.store, r.ID, wait, 100*time.Millisecond, func(r run.Run) bool {
		return r.State != run.Running
	}); err != nil {
		return 0, 0, err
	}
	docs, err := b.docs(ctx, r.ID, x)
	if err != nil {
		return 0, 0, err
	}
	ms := make([]float64, 0, len(docs))
	for _, d := range docs {
		ms = append(ms, float64(d.ProcessedAt.Sub(d.ReleasedAt).Microseconds())/1000)
	}
	return percentile(ms, 50), percentile(ms, 99), nil
}

// rateResult is the rate check of one Y.
type rateResult struct {
	Y           int64   `json:"y"`
	Seconds     float64 `json:"seconds"`
	Released    int64   `json:"released"`
	Max60s      int64   `json:"max_60s"`
	Max60sOverY float64 `json:"rate_max_60s_over_y"`
	Max1s       int64   `json:"rate_max_1s"`
	Bound1s     int64   `json:"bound_1s"`
	Source      string  `json:"source"`
}

// rate releases at y per minute for b.cfg.RateFor and returns the most jobs
// released in any 60-second and any 1-second window, from the releasedAt
// instants of the documents (sliding windows) when every job was processed
// in time, else from the run's per-second release histogram in Redis.
// during runs alongside, once the run is releasing.
func (b *bench) rate(ctx context.Context, y int64, during func(ctx context.Context)) (rateResult, error) {
	x := int64(math.Round(float64(y) * b.cfg.RateFor.Minutes()))
	res := rateResult{Y: y, Bound1s: int64(math.Ceil(float64(y)/60)) + 1}
	r, err := b.start(ctx, x, y)
	if err != nil {
		return res, err
	}
	if during != nil {
		during(ctx)
	}
	// On a saturated machine the releaser gets less CPU than it asks for
	// and falls behind Y (it never catches up in a burst), so allow twice
	// the time; past that, measure what was released.
	if _, err := waitRun(ctx, b.store, r.ID, 2*b.cfg.RateFor+time.Minute, 200*time.Millisecond, func(r run.Run) bool {
		return r.Enqueued >= x
	}); err != nil {
		b.log.Warn("rate run still releasing; measuring what it released", "y", y, "err", err)
		if _, err := b.stop(ctx); err != nil {
			return res, err
		}
	}
	// When processing is slower than Y, a backlog drains after the last
	// release; the documents give exact instants once it has.
	final, _ := waitRun(ctx, b.store, r.ID, 5*time.Minute, 200*time.Millisecond, func(r run.Run) bool {
		return r.State != run.Running
	})
	var instants []time.Time
	if final.State == run.Completed && x <= 200_000 {
		docs, err := b.docs(ctx, r.ID, x)
		if err == nil && int64(len(docs)) == x {
			for _, d := range docs {
				instants = append(instants, d.ReleasedAt)
			}
		}
	}
	if final.State == run.Running {
		_, _ = b.stop(ctx)
	}
	if instants != nil {
		slices.SortFunc(instants, func(a, b time.Time) int { return a.Compare(b) })
		res.Source = "document releasedAt, sliding windows"
		res.Released = int64(len(instants))
		res.Seconds = instants[len(instants)-1].Sub(instants[0]).Seconds()
		res.Max60s = maxInWindow(instants, time.Minute)
		res.Max1s = maxInWindow(instants, time.Second)
	} else {
		hist, err := b.store.ReleasesPerSecond(ctx, r.ID)
		if err != nil {
			return res, err
		}
		res.Source = "Redis release histogram, whole seconds"
		var secs []int64
		for s, n := range hist {
			secs = append(secs, s)
			res.Released += n
			res.Max1s = max(res.Max1s, n)
		}
		slices.Sort(secs)
		if len(secs) > 0 {
			res.Seconds = float64(secs[len(secs)-1] - secs[0] + 1)
			for _, s := range secs {
				var sum int64
				for t := s; t < s+60; t++ {
					sum += hist[t]
				}
				res.Max60s = max(res.Max60s, sum)
			}
		}
	}
	res.Max60sOverY = round3(float64(res.Max60s) / float64(y))
	b.settle(ctx, r.ID)
	return res, nil
}

// maxInWindow is the most instants in any half-open window of length w.
func maxInWindow(ts []time.Time, w time.Duration) int64 {
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Sub(ts[i]) < w {
			j++
		}
		best = max(best, j-i)
	}
	return int64(best)
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return round1(s[max(0, min(i, len(s)-1))])
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
