package esstore

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startRun runs the whole server (Run) on a free port and returns its URL
// and a stop function that waits for Run to return.
func startRun(t *testing.T, dir string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	cfg := Config{Addr: "127.0.0.1:0", DataDir: dir, BatchDelay: time.Millisecond, BatchSize: 100,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { done <- Run(ctx, cfg, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		return "http://" + a, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v after its context ended", err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return "", nil
}

func do(t *testing.T, method, url, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

func TestRunKeepsDataAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url, stop := startRun(t, dir)
	if got := do(t, "PUT", url+"/jobs", jobsMapping); got != 200 {
		t.Fatalf("create index: %d", got)
	}
	if got := do(t, "PUT", url+"/jobs/_doc/r-1?op_type=create", `{"runId":"r","jobId":1}`); got != 201 {
		t.Fatalf("create doc: %d", got)
	}
	stop()

	url, stop = startRun(t, dir)
	defer stop()
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"HEAD", "/jobs", "", 200},
		{"GET", "/jobs/_doc/r-1", "", 200},
		{"PUT", "/jobs/_doc/r-1?op_type=create", `{"runId":"r","jobId":1}`, 409},
		{"PUT", "/jobs/_doc/r-2", `{"runId":"r","bogus":1}`, 400},
	} {
		if got := do(t, tc.method, url+tc.path, tc.body); got != tc.want {
			t.Errorf("after restart %s %s: %d, want %d", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestReadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // a substring naming the variable; "" for valid
	}{
		{"defaults", nil, ""},
		{"all set", map[string]string{"ESSTORE_ADDR": "127.0.0.1:0", "ESSTORE_DATA": "/tmp/x", "ESSTORE_BATCH_DELAY": "3ms",
			"ESSTORE_BATCH_SIZE": "10", "ESSTORE_FAULTS": `[{"status":503,"count":2}]`}, ""},
		{"bad addr", map[string]string{"ESSTORE_ADDR": "nowhere"}, "ESSTORE_ADDR"},
		{"bad delay", map[string]string{"ESSTORE_BATCH_DELAY": "soon"}, "ESSTORE_BATCH_DELAY"},
		{"long delay", map[string]string{"ESSTORE_BATCH_DELAY": "2s"}, "ESSTORE_BATCH_DELAY"},
		{"bad size", map[string]string{"ESSTORE_BATCH_SIZE": "0"}, "ESSTORE_BATCH_SIZE"},
		{"bad faults", map[string]string{"ESSTORE_FAULTS": `{"status":503}`}, "ESSTORE_FAULTS"},
		{"fault without effect", map[string]string{"ESSTORE_FAULTS": `[{"count":1}]`}, "ESSTORE_FAULTS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ReadConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadConfig: %v", err)
				}
				if tc.env == nil && (c.Addr != "127.0.0.1:9200" || c.DataDir != "./.optio/esstore" || c.BatchDelay != time.Millisecond) {
					t.Fatalf("defaults = %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ReadConfig error = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}
