// Package e2e runs Optio end to end: the five functions behind the real
// OpenFaaS gateway with the local provider, the connector, real Redis and
// RabbitMQ, and the Elasticsearch store. The stack is started once for the
// package with its own Redis prefix, queue and index, so nothing else on
// the machine is seen or touched. Runs are sequential: a stack has one
// current run at a time.
package e2e

import (
	"context"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"optio.dev/optio/index"
	"optio.dev/optio/run"
)

func TestEndToEnd(t *testing.T) {
	g, ix := stack.gateway, stack.index

	t.Run("idle before any run", func(t *testing.T) {
		r := g.status(t)
		if r.State != run.Idle || r.Processed != 0 || r.XTotal != 0 {
			t.Fatalf("status before any run = %+v, want idle with zero counters", r)
		}
		var body map[string]string
		if code := g.call(t, http.MethodPost, "stop", nil, &body); code != http.StatusNotFound || body["error"] == "" {
			t.Fatalf("stop with no run answered %d %v, want 404 with an error", code, body)
		}
	})

	t.Run("bad input answers 4xx and changes nothing", func(t *testing.T) {
		before := g.status(t)
		for _, body := range []string{
			``, `{`, `[]`, `null`, `{"x": 10}`, `{"y": 10}`, `{"x": 0, "y": 10}`, `{"x": 10000001, "y": 10}`,
			`{"x": 10, "y": 0}`, `{"x": 10, "y": 1000001}`, `{"x": "10", "y": 10}`, `{"x": 1.5, "y": 10}`,
			`{"x": 10, "y": 10, "z": 1}`, `{"x": 10, "y": 10} trailing`, `{"x": 10, "y": "` + strings.Repeat("9", 70000) + `"}`,
		} {
			var answer map[string]any
			code := g.call(t, http.MethodPost, "run", []byte(body), &answer)
			if code < 400 || code > 499 {
				t.Errorf("run with %.40q answered %d, want 4xx", body, code)
			}
			if msg, _ := answer["error"].(string); msg == "" {
				t.Errorf("run with %.40q answered %v, want {\"error\": \"...\"}", body, answer)
			}
		}
		var answer map[string]any
		if code := g.call(t, http.MethodGet, "run", nil, &answer); code != http.StatusMethodNotAllowed {
			t.Errorf("GET run answered %d, want 405", code)
		}
		if after := g.status(t); after.ID != before.ID || after.State != before.State || after.Enqueued != before.Enqueued {
			t.Fatalf("bad requests changed the run: before %+v after %+v", before, after)
		}
	})

	t.Run("x=300 y=6000 completes with 300 documents", func(t *testing.T) {
		started := time.Now()
		r := g.start(t, 300, 6000)
		first := g.waitFor(t, 30*time.Second, "first job processed", func(s run.Run) bool { return s.Processed > 0 })
		firstAfter := time.Since(started)
		// Invariant 4: the first job is processed within 2 s of Start, not
		// at the next cron minute (measured here: about 100 ms).
		if firstAfter > 2*time.Second {
			t.Fatalf("first job processed %v after start, want within 2 s (invariant 4)", firstAfter)
		}
		t.Logf("first job processed %v after start", firstAfter.Round(time.Millisecond))
		_ = first
		done := g.waitFor(t, 2*time.Minute, "run completed", func(s run.Run) bool { return s.State != run.Running })
		if done.ID != r.ID || done.State != run.Completed || done.Enqueued != 300 || done.Processed != 300 ||
			done.Failed != 0 || done.Cancelled != 0 || done.FinishedAt == nil {
			t.Fatalf("final status %+v, want completed with enqueued=processed=300", done)
		}
		if n := countDocs(t, ix, r.ID); n != 300 {
			t.Fatalf("%d documents of run %s, want 300", n, r.ID)
		}
	})

	t.Run("x=2000 y=600000 completes at full speed", func(t *testing.T) {
		started := time.Now()
		r := g.start(t, 2000, 600_000)
		done := g.waitFor(t, 3*time.Minute, "run completed", func(s run.Run) bool { return s.State != run.Running })
		took := time.Since(started)
		if done.State != run.Completed || done.Processed != 2000 || done.Enqueued != 2000 {
			t.Fatalf("final status %+v", done)
		}
		if n := countDocs(t, ix, r.ID); n != 2000 {
			t.Fatalf("%d documents, want 2000", n)
		}
		t.Logf("2000 jobs in %v: %.0f jobs/s through the gateway", took.Round(time.Millisecond), 2000/took.Seconds())
	})

	t.Run("x=20 y=60 releases about one job a second", func(t *testing.T) {
		r := g.start(t, 20, 60)
		done := g.waitFor(t, 90*time.Second, "run completed", func(s run.Run) bool { return s.State != run.Running })
		if done.State != run.Completed || done.Processed != 20 {
			t.Fatalf("final status %+v", done)
		}
		released := releaseTimes(t, ix, r.ID, 20)
		checkWindows(t, released, 60)
		span := released[len(released)-1].Sub(released[0])
		if span < 18*time.Second {
			t.Fatalf("20 jobs at 60/min released over %v, want about 19 s", span)
		}
	})

	t.Run("second run answers 409 while the first runs", func(t *testing.T) {
		r := g.start(t, 1000, 60)
		var answer struct {
			run.Run
			Error string `json:"error"`
		}
		if code := g.call(t, http.MethodPost, "run", []byte(`{"x": 5, "y": 5}`), &answer); code != http.StatusConflict {
			t.Fatalf("second run answered %d, want 409", code)
		}
		if answer.ID != r.ID || answer.State != run.Running || answer.Error == "" {
			t.Fatalf("409 body = %+v, want the running run %s and an error", answer, r.ID)
		}
		stopped := g.stop(t)
		if stopped.ID != r.ID || stopped.State != run.Stopped {
			t.Fatalf("stop answered %+v", stopped)
		}
		again := g.stop(t)
		if again.ID != r.ID || again.State != run.Stopped || again.Enqueued != stopped.Enqueued {
			t.Fatalf("second stop answered %+v, want the stopped run unchanged", again)
		}
	})

	t.Run("stop in mid-run freezes the counters", func(t *testing.T) {
		r := g.start(t, 100_000, 60_000)
		g.waitFor(t, 30*time.Second, "some jobs processed", func(s run.Run) bool { return s.Processed >= 100 })
		stopped := g.stop(t)
		if stopped.State != run.Stopped {
			t.Fatalf("stop answered %+v", stopped)
		}
		// Every released job is settled: processed (if it was in flight) or
		// cancelled (if it was still queued).
		final := g.waitFor(t, time.Minute, "queued jobs settled", func(s run.Run) bool { return s.Done >= s.Enqueued })
		if final.Enqueued != stopped.Enqueued {
			t.Fatalf("enqueued moved after stop answered: %d then %d", stopped.Enqueued, final.Enqueued)
		}
		const inFlight = 10 // prefetch 10 x one connector
		if final.Processed > stopped.Processed+inFlight {
			t.Fatalf("processed went from %d to %d after stop; at most %d jobs were in flight",
				stopped.Processed, final.Processed, inFlight)
		}
		if final.Processed+final.Failed+final.Cancelled != final.Enqueued || final.State != run.Stopped {
			t.Fatalf("final %+v: processed+failed+cancelled must equal enqueued", final)
		}
		time.Sleep(2 * time.Second)
		if later := g.status(t); later.Processed != final.Processed || later.Enqueued != final.Enqueued {
			t.Fatalf("counters moved after settling: %+v then %+v", final, later)
		}
		if n := countDocs(t, ix, r.ID); n != final.Processed {
			t.Fatalf("%d documents, %d processed", n, final.Processed)
		}
	})

	t.Run("ten concurrent schedule invocations keep the rate", func(t *testing.T) {
		r := g.start(t, 30, 600)
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var res map[string]any
				if code := g.call(t, http.MethodPost, "schedule", nil, &res); code != http.StatusOK {
					t.Errorf("schedule answered %d: %v", code, res)
				}
			}()
		}
		done := g.waitFor(t, time.Minute, "run completed", func(s run.Run) bool { return s.State != run.Running })
		wg.Wait()
		if done.Processed != 30 || done.Enqueued != 30 {
			t.Fatalf("final status %+v", done)
		}
		checkWindows(t, releaseTimes(t, ix, r.ID, 30), 600)
	})
}

// releaseTimes reads when each job of a run was released, from its document.
func releaseTimes(t *testing.T, ix *index.Index, runID string, x int64) []time.Time {
	t.Helper()
	ctx := context.Background()
	out := make([]time.Time, 0, x)
	for job := int64(0); job < x; job++ {
		doc, found, err := ix.Get(ctx, runID, job)
		if err != nil || !found {
			t.Fatalf("document of job %d: found=%v err=%v", job, found, err)
		}
		out = append(out, doc.ReleasedAt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// checkWindows asserts invariant 1 on release instants: at most y in any
// 60 s window and at most ceil(y*s/60)+1 in any s-second window, for s = 1.
func checkWindows(t *testing.T, released []time.Time, y int64) {
	t.Helper()
	perSecond := int(math.Ceil(float64(y)/60)) + 1
	for i := range released {
		inSecond, inMinute := 0, 0
		for j := i; j < len(released); j++ {
			d := released[j].Sub(released[i])
			if d < time.Second {
				inSecond++
			}
			if d < time.Minute {
				inMinute++
			}
		}
		if inSecond > perSecond {
			t.Fatalf("%d jobs released in the second after %v; at most %d allowed", inSecond, released[i], perSecond)
		}
		if inMinute > int(y) {
			t.Fatalf("%d jobs released in the minute after %v; at most %d allowed", inMinute, released[i], y)
		}
	}
}
