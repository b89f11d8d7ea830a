package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/redis/go-redis/v9"

	"optio.dev/local/supervisor"
	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// faultRow is one line of the reliability table in README.md: a fault, the
// runs and jobs it covered, and how many jobs were lost or duplicated.
type faultRow struct {
	Fault      string
	Runs       int
	Jobs       int64
	Lost       int64
	Duplicated int64
}

var faultTable struct {
	sync.Mutex
	rows []faultRow
}

// record adds a row to the reliability table and fails the test when a job
// was lost or duplicated.
func record(t *testing.T, row faultRow) {
	t.Helper()
	faultTable.Lock()
	faultTable.rows = append(faultTable.rows, row)
	faultTable.Unlock()
	t.Logf("| %s | %d | %d | %d | %d |", row.Fault, row.Runs, row.Jobs, row.Lost, row.Duplicated)
	if row.Lost != 0 || row.Duplicated != 0 {
		t.Errorf("%s: %d jobs lost, %d duplicated; want 0 and 0", row.Fault, row.Lost, row.Duplicated)
	}
}

// printFaultTable writes the reliability table as Markdown, for README.md.
func printFaultTable() {
	faultTable.Lock()
	defer faultTable.Unlock()
	if len(faultTable.rows) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("\nreliability table (README.md, \"Reliability\"):\n\n")
	b.WriteString("| fault | runs | jobs | lost | duplicated |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, r := range faultTable.rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", r.Fault, r.Runs, r.Jobs, r.Lost, r.Duplicated)
	}
	fmt.Fprint(os.Stdout, b.String())
}

// tally is the outcome of the runs one fault covered.
type tally struct {
	runs             int
	jobs, lost, dups int64
}

func (a *tally) add(o tally) {
	a.runs += o.runs
	a.jobs += o.jobs
	a.lost += o.lost
	a.dups += o.dups
}

func (a tally) row(fault string) faultRow {
	return faultRow{Fault: fault, Runs: a.runs, Jobs: a.jobs, Lost: a.lost, Duplicated: a.dups}
}

// redisClient is a client of the stack's Redis, to read the truth behind
// what status shows.
var redisClient = sync.OnceValue(func() *redis.Client {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		panic(err) // a test aid: REDIS_URL of the test run is broken
	}
	return redis.NewClient(opt)
})

func runKey(id string) string { return stack.env["OPTIO_PREFIX"] + "run:" + id }

// settle waits until run id is no longer running and every released job is
// accounted for (processed, failed or cancelled), tolerating a status that
// cannot answer for a while (a fault may be under way). It returns the last
// status.
func settle(t *testing.T, id string, timeout time.Duration) run.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last run.Run
	var lastErr error
	logged := time.Now()
	for time.Now().Before(deadline) {
		r, err := tryStatus()
		if err == nil {
			last = r
			if r.ID == id && r.State != run.Running && r.Done >= r.Enqueued {
				return r
			}
		}
		lastErr = err
		if time.Since(logged) > 10*time.Second {
			t.Logf("settling %s: %s enqueued=%d processed=%d failed=%d cancelled=%d (err %v)",
				id, last.State, last.Enqueued, last.Processed, last.Failed, last.Cancelled, err)
			logged = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("run %s did not settle within %v: last status %+v, last error %v", id, timeout, last, lastErr)
	return last
}

// tryStatus asks status once and reports an error instead of failing.
func tryStatus() (run.Run, error) {
	var r run.Run
	req, _ := http.NewRequest(http.MethodGet, stack.gateway.url+"/function/status", nil)
	res, err := stack.gateway.http.Do(req)
	if err != nil {
		return r, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status answered %d", res.StatusCode)
	}
	return r, json.NewDecoder(res.Body).Decode(&r)
}

// waitUntil polls status (tolerating failures) until cond holds.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func(run.Run) bool) run.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last run.Run
	for time.Now().Before(deadline) {
		if r, err := tryStatus(); err == nil {
			last = r
			if cond(r) {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v; last status %+v", what, timeout, last)
	return last
}

// audit checks the invariants of a settled run and counts what was lost
// and duplicated:
//
//   - processed + failed + cancelled accounts for every released job (all
//     x of a completed run);
//   - the counters status shows equal the run's hash in Redis, and their sum
//     equals the bits set in the run's bitmap (a counter that moved twice for
//     one job is a duplicate);
//   - every processed job has exactly one Elasticsearch document: the
//     documents of the run (one per _id) number exactly processed;
//   - failed jobs are in the dead-letter queue when wantDead says so;
//   - the dashboard shows the truth: the relay's latest WebSocket message
//     carries the same counters and state.
func audit(t *testing.T, shown run.Run) tally {
	t.Helper()
	ctx := context.Background()
	rdb := redisClient()
	h, err := rdb.HGetAll(ctx, runKey(shown.ID)).Result()
	if err != nil || len(h) == 0 {
		t.Fatalf("run %s in Redis: %v (hash %v)", shown.ID, err, h)
	}
	truth := run.Run{}
	fmt.Sscan(h["processed"], &truth.Processed)
	fmt.Sscan(h["failed"], &truth.Failed)
	fmt.Sscan(h["cancelled"], &truth.Cancelled)
	fmt.Sscan(h["enqueued"], &truth.Enqueued)
	fmt.Sscan(h["x"], &truth.XTotal)
	bits, err := rdb.BitCount(ctx, runKey(shown.ID)+":done", nil).Result()
	if err != nil {
		t.Fatalf("bitmap of run %s: %v", shown.ID, err)
	}
	// A run whose every job failed wrote nothing: the index may not exist.
	if err := stack.index.EnsureIndex(ctx); err != nil {
		t.Fatalf("index: %v", err)
	}
	docs := countDocs(t, stack.index, shown.ID)

	if shown.Processed != truth.Processed || shown.Failed != truth.Failed || shown.Cancelled != truth.Cancelled {
		t.Errorf("status shows processed=%d failed=%d cancelled=%d, Redis holds %d %d %d",
			shown.Processed, shown.Failed, shown.Cancelled, truth.Processed, truth.Failed, truth.Cancelled)
	}
	if seen, ok := dashboardShows(shown.ID, shown.State, truth); !ok {
		t.Errorf("the dashboard shows run %s %s processed=%d failed=%d cancelled=%d; the truth is %s %d %d %d",
			seen.ID, seen.State, seen.Processed, seen.Failed, seen.Cancelled, shown.State, truth.Processed, truth.Failed, truth.Cancelled)
	}
	done := truth.Processed + truth.Failed + truth.Cancelled
	var out tally
	out.runs, out.jobs = 1, truth.XTotal
	released := truth.XTotal
	if shown.State != run.Completed {
		released = max(truth.Enqueued, done)
		out.jobs = released
	}
	if shown.State == run.Completed && done != truth.XTotal {
		t.Errorf("completed run %s accounts for %d of %d jobs", shown.ID, done, truth.XTotal)
	}
	if done < released {
		t.Errorf("run %s: %d jobs released, %d accounted for", shown.ID, released, done)
		out.lost += released - done
	}
	if done != bits {
		t.Errorf("run %s: counters sum to %d, bitmap has %d jobs", shown.ID, done, bits)
		if done > bits {
			out.dups += done - bits
		} else {
			out.lost += bits - done
		}
	}
	switch {
	case docs < truth.Processed:
		t.Errorf("run %s: %d processed, %d documents", shown.ID, truth.Processed, docs)
		out.lost += truth.Processed - docs
	case docs > truth.Processed:
		t.Errorf("run %s: %d processed, %d documents (a job left a document and was counted otherwise)", shown.ID, truth.Processed, docs)
		out.dups += docs - truth.Processed
	}
	// Bounds: the keys of a run that ended expire (retention), so Redis
	// does not grow with every run.
	if shown.State != run.Running {
		for _, k := range []string{runKey(shown.ID), runKey(shown.ID) + ":done", runKey(shown.ID) + ":releases", runKey(shown.ID) + ":failed"} {
			ttl, err := rdb.TTL(ctx, k).Result()
			if err != nil {
				t.Fatalf("TTL of %s: %v", k, err)
			}
			if ttl == -1 { // -2: the key does not exist (no failure, say)
				t.Errorf("key %s of ended run %s has no TTL", k, shown.ID)
			}
		}
	}
	t.Logf("run %s %s: x=%d enqueued=%d processed=%d failed=%d cancelled=%d bits=%d docs=%d",
		shown.ID, shown.State, truth.XTotal, truth.Enqueued, truth.Processed, truth.Failed, truth.Cancelled, bits, docs)
	return out
}

// deadJobs lists the dead-lettered jobs of run id without taking them off
// the dead-letter queue.
func deadJobs(t *testing.T, id string) []queue.DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := queue.ListDead(ctx, amqpURL(), topology(), 100_000)
	if err != nil {
		t.Fatalf("list dead letters: %v", err)
	}
	var out []queue.DeadLetter
	for _, d := range all {
		if d.Job.RunID == id {
			out = append(out, d)
		}
	}
	return out
}

func amqpURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

func topology() queue.Topology {
	return queue.Topology{Jobs: stack.env["OPTIO_QUEUE"], DeliveryLimit: 5}
}

// ensureIdle stops a run a failed test may have left running, so the next
// test can start one.
func ensureIdle(t *testing.T) {
	t.Helper()
	r, err := tryStatus()
	if err != nil || r.State != run.Running {
		return
	}
	t.Logf("stopping run %s left running", r.ID)
	stack.gateway.stop(t)
	settle(t, r.ID, time.Minute)
}

// dashboardShows connects to the relay's WebSocket as the dashboard does and
// reads its messages until one shows run id in state with truth's counters,
// for up to 5 s (the relay sends a snapshot at once, then every change). It
// returns the last run seen and whether it matched.
func dashboardShows(id string, state run.State, truth run.Run) (run.Run, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := strings.Replace(supervisor.DashboardURL, "http://", "ws://", 1) + "/ws"
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {supervisor.DashboardURL}}})
	if err != nil {
		return run.Run{ID: "(relay unreachable: " + err.Error() + ")"}, false
	}
	defer c.CloseNow()
	var last run.Run
	for {
		var m struct {
			Run run.Run `json:"run"`
		}
		if err := wsjson.Read(ctx, c, &m); err != nil {
			return last, false
		}
		last = m.Run
		if last.ID == id && last.State == state && last.Processed == truth.Processed &&
			last.Failed == truth.Failed && last.Cancelled == truth.Cancelled {
			return last, true
		}
	}
}
