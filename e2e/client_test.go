package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"optio.dev/optio/index"
	"optio.dev/optio/run"
)

// gateway talks to the functions through the real OpenFaaS gateway.
type gateway struct {
	url  string
	user string
	pass string
	http *http.Client
}

// call invokes a function and decodes its JSON answer into out (if not nil).
func (g *gateway) call(t *testing.T, method, fn string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, g.url+"/function/"+fn, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.http.Do(req)
	if err != nil {
		t.Fatalf("%s /function/%s: %v", method, fn, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s /function/%s answered %d with %q: %v", method, fn, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func (g *gateway) start(t *testing.T, x, y int64) run.Run {
	t.Helper()
	var r run.Run
	if code := g.call(t, http.MethodPost, "run", fmt.Appendf(nil, `{"x": %d, "y": %d}`, x, y), &r); code != http.StatusCreated {
		t.Fatalf("run x=%d y=%d answered %d: %+v", x, y, code, r)
	}
	return r
}

func (g *gateway) status(t *testing.T) run.Run {
	t.Helper()
	var r run.Run
	if code := g.call(t, http.MethodGet, "status", nil, &r); code != http.StatusOK {
		t.Fatalf("status answered %d", code)
	}
	return r
}

func (g *gateway) stop(t *testing.T) run.Run {
	t.Helper()
	var r run.Run
	if code := g.call(t, http.MethodPost, "stop", nil, &r); code != http.StatusOK {
		t.Fatalf("stop answered %d: %+v", code, r)
	}
	return r
}

// waitFor polls status until cond holds or timeout passes, logging progress.
func (g *gateway) waitFor(t *testing.T, timeout time.Duration, what string, cond func(run.Run) bool) run.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for {
		r := g.status(t)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last status %+v", what, timeout, r)
		}
		if time.Since(last) > 10*time.Second {
			t.Logf("waiting for %s: %s enqueued=%d processed=%d failed=%d cancelled=%d",
				what, r.State, r.Enqueued, r.Processed, r.Failed, r.Cancelled)
			last = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countDocs counts the Elasticsearch documents of a run.
func countDocs(t *testing.T, ix *index.Index, runID string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := ix.Count(ctx, runID)
	if err != nil {
		t.Fatalf("count documents of %s: %v", runID, err)
	}
	return n
}
