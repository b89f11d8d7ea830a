package function

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/config"
	"optio.dev/optio/index"
)

// These tests need no server: the golang-http template runs them while it
// builds the image. A message that is not a job is refused before any store
// is touched.
func TestRefusesBadJobs(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"runId":"r","jobId":-1}`, `not json`} {
		resp, err := Handle(handler.Request{Method: http.MethodPost, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		var answer map[string]string
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(resp.Body, &answer) != nil || answer["error"] == "" {
			t.Fatalf("job %q answered %d %s; want 400 with an error", body, resp.StatusCode, resp.Body)
		}
	}
}

func TestReadConfig(t *testing.T) {
	c, err := readConfig(config.Map(map[string]string{"OPTIO_WORK_MS": "2.5", "OPTIO_FAIL_RATE": "0.1"}))
	if err != nil || c.WorkTime != 2500*time.Microsecond || c.FailRate != 0.1 {
		t.Fatalf("config = %+v, %v", c, err)
	}
	for value, want := range map[string]time.Duration{"": 30 * time.Second, "20": 20 * time.Second, "1m30s": 90 * time.Second} {
		c, err := readConfig(config.Map(map[string]string{"exec_timeout": value}))
		if err != nil || c.ExecTimeout != want {
			t.Errorf("exec_timeout=%q: %v, %v; want %v", value, c.ExecTimeout, err, want)
		}
	}
	for key, value := range map[string]string{"OPTIO_WORK_MS": "-1", "OPTIO_FAIL_RATE": "2", "exec_timeout": "soon"} {
		if _, err := readConfig(config.Map(map[string]string{key: value})); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: err = %v, want one naming it", key, value, err)
		}
	}
}

// On a cluster the template's request has no deadline: the invocation gets
// exec_timeout's; the local watchdog's own deadline is kept.
func TestInvocationContext(t *testing.T) {
	ctx, cancel := invocationContext(context.Background(), 20*time.Second)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 20*time.Second || time.Until(d) < 19*time.Second {
		t.Errorf("no deadline from exec_timeout: %v %v", d, ok)
	}
	parent, cancelParent := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelParent()
	ctx2, cancel2 := invocationContext(parent, 20*time.Second)
	defer cancel2()
	if d, ok := ctx2.Deadline(); !ok || time.Until(d) > 2*time.Second {
		t.Errorf("the watchdog's deadline was not kept: %v %v", d, ok)
	}
}

// While Elasticsearch answers 503 and 429 for a while, writing a document
// keeps trying within the invocation's deadline instead of failing the
// attempt (which would spend one of the job's limited deliveries).
func TestPutRidesOutAnUnavailableStore(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var until atomic.Int64 // unix nanoseconds
	until.Store(time.Now().Add(1500 * time.Millisecond).UnixNano())
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if time.Now().UnixNano() < until.Load() {
			status := http.StatusServiceUnavailable
			if calls.Load()%2 == 0 {
				status = http.StatusTooManyRequests
			}
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"type":"unavailable_shards_exception","reason":"down"},"status":%d}`, status)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"result":"created"}`)
	}))
	defer es.Close()
	ix, err := index.New(index.Config{URL: es.URL, Index: "t"})
	if err != nil {
		t.Fatal(err)
	}
	d := &deps{index: ix}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.put(ctx, index.Doc{RunID: "r-1", JobID: 1}); err != nil {
		t.Fatalf("put through a 1.5 s outage: %v (after %d calls)", err, calls.Load())
	}
	// With little time left it gives up and answers, so the connector
	// gets an answer before its own timeout.
	until.Store(time.Now().Add(time.Hour).UnixNano())
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := d.put(short, index.Doc{RunID: "r-1", JobID: 2}); err == nil || !index.IsRetryable(err) || short.Err() != nil {
		t.Fatalf("put with 2 s left during an outage = %v (ctx %v), want a retryable error before the deadline", err, short.Err())
	}
}
