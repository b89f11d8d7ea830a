// Package autoscale checks autoscaling by invocation rate end to end: a run
// at a high rate makes Prometheus fire APIHighInvocationRate for process,
// Alertmanager posts it to the real gateway's /system/alert, the gateway
// scales process up through the local provider step by step, and after the
// run the resolved alert brings it back to its minimum. It starts its own
// stack, with alert intervals of seconds instead of the chart's tens of
// seconds, so that the whole cycle takes well under a minute.
package autoscale

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"optio.dev/local/supervisor"
	"optio.dev/optio/index"
	"optio.dev/optio/run"
)

var (
	stack  *supervisor.Stack
	docs   *index.Index
	client = &http.Client{Timeout: 30 * time.Second}
)

// alerting makes the alert fire about 5 s after the load starts and repeat
// every 4 s, each repeat adding a replica (process: min 1, max 5, factor 20).
var alerting = supervisor.Alerting{
	ScrapeInterval: time.Second,
	EvalInterval:   time.Second,
	RateWindow:     5 * time.Second,
	For:            2 * time.Second,
	Threshold:      10,
	GroupWait:      time.Second,
	GroupInterval:  2 * time.Second,
	RepeatInterval: 4 * time.Second,
}

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin := os.Getenv("OPTIO_BIN_DIR")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	state, err := os.MkdirTemp("", "optio-autoscale-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	env := map[string]string{
		"OPTIO_PREFIX": "e2e-as:" + id + ":",
		"OPTIO_QUEUE":  "e2e-as." + id + ".jobs",
		"OPTIO_INDEX":  "e2e_as_" + id,
	}
	esURL := os.Getenv("ES_URL")
	if esURL != "" {
		env["ES_URL"] = esURL
	}
	log, err := os.Create(filepath.Join(state, "stack.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The lock wait covers the other e2e package, whose stack holds the
	// gateway's ports while it runs (go test runs packages in parallel);
	// the test binary's -timeout only starts counting in m.Run.
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	s, err := supervisor.Start(ctx, supervisor.Config{
		BinDir:         bin,
		StateDir:       state,
		StackFile:      filepath.Join(root, "stack.yml"),
		ServicesScript: filepath.Join(root, "scripts", "services.sh"),
		ESURL:          esURL,
		Env:            env,
		Alerting:       alerting,
		LockWait:       30 * time.Minute,
		Output:         log,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the stack (logs in %s): %v\n", state, err)
		return 1
	}
	if esURL == "" {
		esURL = supervisor.ESStoreURL
	}
	ix, err := index.New(index.Config{URL: esURL, Index: env["OPTIO_INDEX"]})
	if err != nil {
		s.Stop()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stack, docs = s, ix
	code := m.Run()
	s.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs kept in %s\n", state)
	} else {
		os.RemoveAll(state)
	}
	return code
}

// TestProcessScalesWithInvocationRate drives a run at 200 jobs a second and
// watches process grow from its minimum of 1 replica, then shrink back once
// the run is stopped. It logs the figures the README quotes.
func TestProcessScalesWithInvocationRate(t *testing.T) {
	const (
		maxLoad = 45 * time.Second // the load stops earlier once process is at its max
		maxReps = 5                // process's com.openfaas.scale.max (and CE's cap)
	)
	waitReplicas(t, time.Minute, 1)
	first := providerReplicas(t)
	if len(first) != 1 {
		t.Fatalf("want 1 replica of process before the load, have %+v", first)
	}
	original := first[0].PID

	loadStart := time.Now()
	r := call[run.Run](t, http.MethodPost, "/function/run", `{"x": 100000, "y": 12000}`, http.StatusCreated)

	var secondAt time.Duration // load start -> a second replica has taken a call
	peak, peakAt := 1, time.Duration(0)
	statusSaw := 0 // the highest processReplicas status answered
	lastStatus := time.Time{}
	for time.Since(loadStart) < maxLoad {
		for _, rep := range providerReplicas(t) {
			if secondAt == 0 && rep.PID != original && rep.Served > 0 {
				secondAt = time.Since(loadStart)
				t.Logf("%5.1fs a second replica takes traffic", secondAt.Seconds())
			}
		}
		if n := gatewayReplicas(t); n > peak {
			peak, peakAt = n, time.Since(loadStart)
			t.Logf("%5.1fs process has %d ready replicas", peakAt.Seconds(), n)
		}
		if time.Since(lastStatus) > time.Second {
			st := call[statusAnswer](t, http.MethodGet, "/function/status", "", http.StatusOK)
			statusSaw = max(statusSaw, st.ProcessReplicas)
			lastStatus = time.Now()
		}
		if peak >= maxReps && secondAt > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	loadEnd := time.Now() // the run stops releasing (and process skips its jobs) from here
	stopped := call[run.Run](t, http.MethodPost, "/function/stop", "", http.StatusOK)
	if secondAt == 0 || peak < 2 {
		t.Fatalf("process did not scale up within %v of load (peak %d replicas, processed %d)", maxLoad, peak, stopped.Processed)
	}
	if statusSaw < 2 {
		t.Errorf("status never answered processReplicas above 1 (highest %d) while the gateway reported %d", statusSaw, peak)
	}

	// The queued jobs of the stopped run are acknowledged and skipped; then
	// the rate falls, the alert resolves and process goes back to 1.
	final := waitSettled(t, stopped)
	back := waitReplicas(t, 90*time.Second, 1)
	backAfter := back.Sub(loadEnd)
	if n := len(providerReplicas(t)); n != 1 {
		t.Errorf("provider runs %d replicas of process after scaling down, want 1", n)
	}
	t.Logf("autoscaling: load start -> second replica taking traffic %.1fs; peak %d replicas (%.1fs after load start); "+
		"stop -> back to 1 replica %.1fs; run %s at y=12000/min: processed %d (%.0f jobs/s), cancelled %d",
		secondAt.Seconds(), peak, peakAt.Seconds(), backAfter.Seconds(), r.ID, final.Processed,
		float64(final.Processed)/loadEnd.Sub(loadStart).Seconds(), final.Cancelled)

	// Scaling never loses or repeats a job.
	if n := countDocs(t, r.ID); n != final.Processed {
		t.Fatalf("%d documents for %d processed jobs", n, final.Processed)
	}
	if st := call[statusAnswer](t, http.MethodGet, "/function/status", "", http.StatusOK); st.ProcessReplicas != 1 {
		// The status cache is a second old at most.
		time.Sleep(1100 * time.Millisecond)
		if st = call[statusAnswer](t, http.MethodGet, "/function/status", "", http.StatusOK); st.ProcessReplicas != 1 {
			t.Errorf("status answers processReplicas %d after scaling down, want 1", st.ProcessReplicas)
		}
	}
}

type statusAnswer struct {
	run.Run
	ProcessReplicas int `json:"processReplicas"`
}

// waitSettled waits until every released job of the stopped run is
// accounted for.
func waitSettled(t *testing.T, stopped run.Run) run.Run {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := call[run.Run](t, http.MethodGet, "/function/status", "", http.StatusOK)
		if st.Done >= st.Enqueued {
			if st.Processed+st.Failed+st.Cancelled != st.Enqueued || st.Enqueued != stopped.Enqueued {
				t.Fatalf("settled run %+v, stopped as %+v", st, stopped)
			}
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs of the stopped run not settled: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReplicas waits until the gateway reports n ready replicas of process
// and no others, and returns when.
func waitReplicas(t *testing.T, within time.Duration, n int) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := functionStatus(t)
		if st.Replicas == n && st.AvailableReplicas == n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("process has %d replicas (%d ready) after %v, want %d", st.Replicas, st.AvailableReplicas, within, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type functionStatusAnswer struct {
	Replicas          int `json:"replicas"`
	AvailableReplicas int `json:"availableReplicas"`
}

func functionStatus(t *testing.T) functionStatusAnswer {
	t.Helper()
	return call[functionStatusAnswer](t, http.MethodGet, "/system/function/process", "", http.StatusOK)
}

func gatewayReplicas(t *testing.T) int { return functionStatus(t).AvailableReplicas }

// replicaInfo is what the provider's /local/replicas/NAME says of one.
type replicaInfo struct {
	PID    int   `json:"pid"`
	Ready  bool  `json:"ready"`
	Served int64 `json:"served"`
}

func providerReplicas(t *testing.T) []replicaInfo {
	t.Helper()
	return get[[]replicaInfo](t, supervisor.ProviderURL+"/local/replicas/process", http.StatusOK)
}

// call sends a request to the gateway and decodes its JSON answer.
func call[T any](t *testing.T, method, path, body string, want int) T {
	t.Helper()
	req, err := http.NewRequest(method, stack.GatewayURL()+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(path, "/system/") { // the gateway's basic auth
		req.SetBasicAuth(stack.Credentials().User, stack.Credentials().Password)
	}
	return do[T](t, req, want)
}

func get[T any](t *testing.T, url string, want int) T {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do[T](t, req, want)
}

func do[T any](t *testing.T, req *http.Request, want int) T {
	t.Helper()
	var out T
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s answered %d, want %d: %s", req.Method, req.URL, res.StatusCode, want, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s answered %q: %v", req.Method, req.URL, b, err)
	}
	return out
}

func countDocs(t *testing.T, runID string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := docs.Count(ctx, runID)
	if err != nil {
		t.Fatalf("count documents of %s: %v", runID, err)
	}
	return n
}
