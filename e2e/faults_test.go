package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// TestFaults injects real faults into the running stack, one per subtest,
// and ends each with the invariant checks of audit: every released job
// accounted for, one document per processed job, no job counted twice, and
// status showing the truth of Redis and Elasticsearch. Each subtest records
// a row of the reliability table (README.md), and fails when a job was lost
// or duplicated. Redis is restarted last: it wipes the machine's Redis.
func TestFaults(t *testing.T) {
	g := stack.gateway

	// startRun starts a run once no other runs.
	startRun := func(t *testing.T, x, y int64) run.Run {
		t.Helper()
		ensureIdle(t)
		return g.start(t, x, y)
	}
	// midRun waits until cond holds in the run, then injects the fault.
	midRun := func(t *testing.T, what string, cond func(run.Run) bool) run.Run {
		t.Helper()
		r := waitUntil(t, time.Minute, what, cond)
		if r.State != run.Running {
			t.Fatalf("run ended before the fault (%s): %+v; make it longer", what, r)
		}
		return r
	}
	// finish settles the run, audits it and records the row.
	finish := func(t *testing.T, fault string, r run.Run, timeout time.Duration) run.Run {
		t.Helper()
		final := settle(t, r.ID, timeout)
		a := audit(t, final)
		if final.State != run.Completed {
			t.Errorf("run %s ended %s, want completed", r.ID, final.State)
		}
		record(t, a.row(fault))
		return final
	}

	t.Run("kill -9 a process replica", func(t *testing.T) {
		r := startRun(t, 1500, 60_000)
		midRun(t, "300 processed", func(s run.Run) bool { return s.Processed >= 300 })
		old := killReplicas(t, "process", false)
		waitReplicasBack(t, "process", old)
		final := finish(t, "kill -9 a `process` replica in mid-run", r, 2*time.Minute)
		if final.Failed != 0 {
			t.Errorf("%d jobs failed; a killed replica must cost retries, not jobs", final.Failed)
		}
	})

	t.Run("kill -9 every process replica at once", func(t *testing.T) {
		if code := providerCall(t, http.MethodPost, "/system/scale-function/process", map[string]any{"serviceName": "process", "replicas": 3}, nil); code/100 != 2 {
			t.Fatalf("scale process to 3: %d", code)
		}
		t.Cleanup(func() {
			providerCall(t, http.MethodPost, "/system/scale-function/process", map[string]any{"serviceName": "process", "replicas": 1}, nil)
		})
		waitUntilReady(t, "process", 3)
		r := startRun(t, 1500, 60_000)
		midRun(t, "300 processed", func(s run.Run) bool { return s.Processed >= 300 })
		old := killReplicas(t, "process", true)
		if len(old) < 3 {
			t.Fatalf("killed %d replicas, want 3", len(old))
		}
		waitReplicasBack(t, "process", old)
		finish(t, "kill -9 every `process` replica at once", r, 2*time.Minute)
	})

	t.Run("kill -9 every replica of every function, schedule in mid-tick", func(t *testing.T) {
		r := startRun(t, 3000, 30_000)
		midRun(t, "600 released", func(s run.Run) bool { return s.Enqueued >= 600 && s.Enqueued < 2500 })
		var old []int
		for _, fn := range []string{"schedule", "process", "run", "stop", "status"} {
			old = append(old, killReplicas(t, fn, true)...)
		}
		for _, fn := range []string{"schedule", "process", "status"} {
			waitReplicasBack(t, fn, old)
		}
		// The killed tick's lease expires; the next cron tick (within a
		// minute) continues where it stopped, spaced from the last release.
		final := finish(t, "kill -9 every replica of every function (the releasing `schedule` tick too: a lost tick)", r, 3*time.Minute)
		checkWindows(t, releaseTimes(t, stack.index, r.ID, final.Processed), 30_000)
	})

	t.Run("kill -9 the connector", func(t *testing.T) {
		r := startRun(t, 1500, 60_000)
		midRun(t, "300 processed", func(s run.Run) bool { return s.Processed >= 300 })
		signalComponent(t, "connector", syscall.SIGKILL)
		finish(t, "kill -9 the connector in mid-run (the supervisor starts it again)", r, 2*time.Minute)
	})

	t.Run("stop the connector gracefully", func(t *testing.T) {
		r := startRun(t, 1500, 60_000)
		midRun(t, "300 processed", func(s run.Run) bool { return s.Processed >= 300 })
		signalComponent(t, "connector", syscall.SIGTERM)
		finish(t, "SIGTERM to the connector in mid-run (graceful stop, then started again)", r, 2*time.Minute)
	})

	t.Run("gateway restart", func(t *testing.T) {
		r := startRun(t, 1500, 30_000)
		midRun(t, "300 processed", func(s run.Run) bool { return s.Processed >= 300 })
		signalComponent(t, "gateway", syscall.SIGKILL)
		finish(t, "kill -9 the gateway in mid-run (the supervisor starts it again)", r, 2*time.Minute)
	})

	t.Run("RabbitMQ stop_app then start_app", func(t *testing.T) {
		brokerBack(t)
		r := startRun(t, 1500, 12_000)
		midRun(t, "300 released", func(s run.Run) bool { return s.Enqueued >= 300 && s.Enqueued < 1200 })
		rabbitmqctl(t, "stop_app")
		time.Sleep(2 * time.Second)
		rabbitmqctl(t, "start_app")
		resumedByTheTick(t, time.Now())
		finish(t, "RabbitMQ `stop_app` for 2 s then `start_app` in mid-run", r, 2*time.Minute)
	})

	t.Run("RabbitMQ closes every connection", func(t *testing.T) {
		r := startRun(t, 1500, 12_000)
		midRun(t, "300 released", func(s run.Run) bool { return s.Enqueued >= 300 && s.Enqueued < 1200 })
		rabbitmqctl(t, "close_all_connections", "optio fault test")
		resumedByTheTick(t, time.Now())
		finish(t, "RabbitMQ `close_all_connections` in mid-run", r, 2*time.Minute)
	})

	t.Run("Elasticsearch unavailable, overloaded, slow and dropping connections", func(t *testing.T) {
		t.Cleanup(func() { clearStoreFaults(t) })
		r := startRun(t, 1200, 12_000)
		midRun(t, "100 processed", func(s run.Run) bool { return s.Processed >= 100 })
		storeFault(t, map[string]any{"status": 429, "count": 300})
		storeFault(t, map[string]any{"drop": true, "count": 50})
		storeFault(t, map[string]any{"delayMs": 3000, "count": 30})
		// Stalls longer than an attempt may wait: the write times out and
		// is tried again.
		storeFault(t, map[string]any{"delayMs": 16_000, "count": 3})
		time.Sleep(3 * time.Second)
		// Unavailable for 12 s: longer than a job's whole delivery budget
		// at the connector's retry delays.
		storeFault(t, map[string]any{"status": 503, "count": 1_000_000})
		time.Sleep(12 * time.Second)
		clearStoreFaults(t)
		final := finish(t, "Elasticsearch (the store) answers 429, 503 for 12 s, drops connections, stalls 3 s and 16 s (client timeouts)", r, 2*time.Minute)
		if final.Failed != 0 {
			t.Errorf("%d jobs failed; an unavailable store must cost retries, not jobs", final.Failed)
		}
	})

	t.Run("the same job message published twice", func(t *testing.T) {
		r := startRun(t, 600, 12_000)
		midRun(t, "100 released", func(s run.Run) bool { return s.Enqueued >= 100 })
		publishDuplicates(t, r.ID, 0, 99)
		final := settle(t, r.ID, time.Minute)
		// And once more after it completed: nothing may move.
		publishDuplicates(t, r.ID, 0, 599)
		waitQueueEmpty(t)
		if later, _ := tryStatus(); later.Processed != final.Processed || later.Cancelled != final.Cancelled || later.Failed != final.Failed {
			t.Errorf("duplicates after completion moved the counters: %+v then %+v", final, later)
		}
		finish(t, "each job message published twice (700 extra copies, in mid-run and after completion)", r, time.Minute)
	})

	t.Run("schedule invoked 20 times at once", func(t *testing.T) {
		r := startRun(t, 120, 1200)
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.call(t, http.MethodPost, "schedule", nil, nil)
			}()
		}
		final := finish(t, "`schedule` invoked 20 times at once", r, time.Minute)
		wg.Wait()
		checkWindows(t, releaseTimes(t, stack.index, r.ID, final.Processed), 1200)
	})

	t.Run("cron fires twice in a minute", func(t *testing.T) {
		r := startRun(t, 120, 1200)
		var wg sync.WaitGroup
		for _, after := range []time.Duration{time.Second, 3 * time.Second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(after)
				g.call(t, http.MethodPost, "schedule", nil, nil)
			}()
		}
		final := finish(t, "the cron trigger fires twice in a minute", r, time.Minute)
		wg.Wait()
		checkWindows(t, releaseTimes(t, stack.index, r.ID, final.Processed), 1200)
	})

	t.Run("jobs that always fail end in the dead-letter queue, then requeue", func(t *testing.T) {
		setProcessEnv(t, map[string]string{"OPTIO_FAIL_RATE": "1"})
		r := startRun(t, 20, 6000)
		final := settle(t, r.ID, 2*time.Minute)
		if final.State != run.Completed || final.Failed != 20 || final.Processed != 0 {
			t.Fatalf("run with every job failing ended %+v, want completed with failed=20", final)
		}
		// A job is counted failed on its last delivery, then answered; the
		// connector hands it back after its retry delay and the broker
		// dead-letters it.
		dead := waitDead(t, r.ID, 20)
		for _, d := range dead {
			if d.Reason != "delivery_limit" {
				t.Errorf("job %d dead-lettered for %q, want delivery_limit", d.Job.JobID, d.Reason)
			}
		}
		a := audit(t, final)

		// The documented way back: optio-dlq requeue, once the cause is fixed.
		setProcessEnv(t, map[string]string{"OPTIO_FAIL_RATE": "0"})
		out := optioDLQ(t, "list", "-run", r.ID)
		if !strings.Contains(out, "20 dead-lettered jobs") {
			t.Fatalf("optio-dlq list printed %q", out)
		}
		out = optioDLQ(t, "requeue", "-run", r.ID)
		if !strings.Contains(out, "requeued 20 jobs") {
			t.Fatalf("optio-dlq requeue printed %q", out)
		}
		again := waitUntil(t, time.Minute, "requeued jobs processed", func(s run.Run) bool { return s.ID == r.ID && s.Processed == 20 })
		if again.Failed != 0 || again.State != run.Completed {
			t.Fatalf("after requeue: %+v, want processed=20 failed=0", again)
		}
		if n := len(deadJobs(t, r.ID)); n != 0 {
			t.Errorf("%d jobs still dead-lettered after requeue", n)
		}
		b := audit(t, again)
		a.add(b)
		a.runs = 1
		a.jobs = 20
		record(t, a.row("every job fails: dead-lettered after the delivery limit, counted failed, then `optio-dlq requeue`d and processed"))
	})

	t.Run("a third of the attempts fail", func(t *testing.T) {
		setProcessEnv(t, map[string]string{"OPTIO_FAIL_RATE": "0.33"})
		r := startRun(t, 300, 60_000)
		final := finish(t, "a third of all attempts fail (OPTIO_FAIL_RATE=0.33)", r, 2*time.Minute)
		waitDead(t, r.ID, int(final.Failed))
	})

	// Last: this one wipes the machine's Redis.
	t.Run("Redis restarts and loses its data", func(t *testing.T) {
		r := startRun(t, 2000, 6000)
		midRun(t, "100 processed", func(s run.Run) bool { return s.Processed >= 100 })
		restartRedis(t)
		// Jobs of the lost run are refused (never counted from zero), and
		// status says the data was lost instead of showing an idle run.
		// Until a job or tick of the lost run meets the empty Redis, status
		// answers 200 with an idle run (a run, not {"error"}: decode both).
		var answer map[string]any
		deadline := time.Now().Add(30 * time.Second)
		code := 0
		for time.Now().Before(deadline) {
			answer = nil
			code = g.call(t, http.MethodGet, "status", nil, &answer)
			if code != http.StatusOK {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		msg, _ := answer["error"].(string)
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, r.ID) {
			t.Fatalf("status after Redis lost run %s answered %d %v, want 503 naming the run", r.ID, code, answer)
		}
		t.Logf("status: %d %s", code, msg)
		if code := g.call(t, http.MethodPost, "stop", nil, &answer); code != http.StatusConflict {
			t.Errorf("stop after Redis lost the run answered %d %v, want 409", code, answer)
		}
		// Wait until every released job is either documented (processed
		// before the loss) or dead-lettered (refused after it), then check
		// that the released jobs form a gap-free prefix with no job both.
		waitQueueEmpty(t)
		var lost, dups, released int64
		docs := docJobs(t, r.ID, r.XTotal)
		dead := map[int64]bool{}
		for _, d := range deadJobs(t, r.ID) {
			if dead[d.Job.JobID] {
				t.Logf("job %d dead-lettered twice (published again by a tick that lost its lease)", d.Job.JobID)
			}
			dead[d.Job.JobID] = true
		}
		for j := range docs {
			released = max(released, j+1)
		}
		for j := range dead {
			released = max(released, j+1)
		}
		for j := int64(0); j < released; j++ {
			if !docs[j] && !dead[j] {
				lost++
			}
		}
		t.Logf("%d jobs released: %d documented, %d dead-lettered", released, len(docs), len(dead))
		if lost > 0 {
			t.Errorf("%d of %d released jobs neither documented nor dead-lettered", lost, released)
		}
		// A new run starts from a clean slate and completes.
		r2 := g.start(t, 50, 60_000)
		final := settle(t, r2.ID, time.Minute)
		b := audit(t, final)
		b.add(tally{runs: 1, jobs: released, lost: lost, dups: dups})
		record(t, b.row("Redis restarts without persistence in mid-run: its jobs are refused and dead-lettered, status answers 503, then a new run"))
	})
}

// waitDead waits until n jobs of run id are in the dead-letter queue.
func waitDead(t *testing.T, id string, n int) []queue.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		dead := deadJobs(t, id)
		if len(dead) == n {
			return dead
		}
		if len(dead) > n || time.Now().After(deadline) {
			t.Fatalf("%d jobs of %s in the dead-letter queue, want %d", len(dead), id, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitUntilReady waits until fn has n ready replicas.
func waitUntilReady(t *testing.T, fn string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ready := 0
		for _, r := range replicas(t, fn) {
			if r.Ready {
				ready++
			}
		}
		if ready >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s has fewer than %d ready replicas after 30 s", fn, n)
}

// resumedByTheTick checks that releases resume after the broker came back
// at back, by the tick that was releasing (it publishes again on a new
// connection) rather than by the next cron tick at the minute boundary.
// When the boundary falls within moments of back, it cannot tell the two
// apart and only logs.
func resumedByTheTick(t *testing.T, back time.Time) {
	t.Helper()
	before, _ := tryStatus()
	r := waitUntil(t, 75*time.Second, "releases resume after the broker is back", func(s run.Run) bool {
		return s.Enqueued > before.Enqueued || s.State != run.Running
	})
	resumed := time.Now()
	boundary := back.Truncate(time.Minute).Add(time.Minute)
	t.Logf("releases resumed %v after the broker was back (enqueued %d -> %d)",
		resumed.Sub(back).Round(time.Millisecond), before.Enqueued, r.Enqueued)
	switch {
	case resumed.Before(boundary):
	case boundary.Sub(back) < 10*time.Second:
		t.Logf("a cron tick was due %v after the broker came back: cannot tell who resumed", boundary.Sub(back).Round(time.Millisecond))
	default:
		t.Errorf("releases resumed only at the next cron minute (%v after the broker was back): the releasing tick gave up", resumed.Sub(back).Round(time.Millisecond))
	}
}

// optioDLQ runs the optio-dlq command on the stack's queue.
func optioDLQ(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(stack.bin, "optio-dlq"), args...)
	cmd.Env = append(cmd.Environ(), "OPTIO_QUEUE="+stack.env["OPTIO_QUEUE"], "AMQP_URL="+amqpURL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("optio-dlq %v: %v\n%s", args, err, out)
	}
	t.Logf("optio-dlq %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	return string(out)
}

// docJobs returns which jobs below x of run id have a document.
func docJobs(t *testing.T, id string, x int64) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	out := map[int64]bool{}
	jobs := make(chan int64)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				_, found, err := stack.index.Get(ctx, id, j)
				if err != nil {
					t.Errorf("document of job %d: %v", j, err)
					continue
				}
				if found {
					mu.Lock()
					out[j] = true
					mu.Unlock()
				}
			}
		}()
	}
	for j := range x {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	return out
}

// queueMessages is how many messages the jobs queue holds, ready or
// unacknowledged, as rabbitmqctl reports.
func queueMessages(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "messages")
	cmd.Env = append(cmd.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == stack.env["OPTIO_QUEUE"] {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("queue %s not in rabbitmqctl list_queues:\n%s", stack.env["OPTIO_QUEUE"], out)
	return 0
}

// waitQueueEmpty waits until the jobs queue holds no message.
func waitQueueEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for queueMessages(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("jobs queue not empty after 90 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
