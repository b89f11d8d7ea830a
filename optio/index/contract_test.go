package index

// The contract tests: the same suite runs against a real Elasticsearch 8
// (ES_URL=...) and against optio-esstore, the local stand-in (ES_URL unset:
// TestMain starts one). Each test works on its own index.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sampleDoc(run string, job int64) Doc {
	at := time.Date(2026, 12, 3, 19, 0, 0, 123_000_000, time.UTC).Add(time.Duration(job) * time.Second)
	return Doc{RunID: run, JobID: job, ProcessedAt: at, ReleasedAt: at.Add(-time.Second), Attempt: 1, DurationMs: 12.5}
}

func sameDoc(a, b Doc) bool {
	return a.RunID == b.RunID && a.JobID == b.JobID && a.ProcessedAt.Equal(b.ProcessedAt) &&
		a.ReleasedAt.Equal(b.ReleasedAt) && a.Attempt == b.Attempt && a.DurationMs == b.DurationMs
}

func TestContractEnsureIndex(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		ix := newIndex(t, nil)
		for i := range 2 {
			if err := ix.EnsureIndex(ctx); err != nil {
				t.Fatalf("EnsureIndex #%d: %v", i+1, err)
			}
		}
	})
	t.Run("concurrent creators", func(t *testing.T) {
		t.Parallel()
		ix := newIndex(t, nil)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- ix.EnsureIndex(ctx) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("EnsureIndex: %v", err)
			}
		}
	})
	t.Run("existing index with a wrong mapping", func(t *testing.T) {
		t.Parallel()
		ix := newIndex(t, nil)
		body := `{"mappings":{"properties":{"runId":{"type":"text"},"jobId":{"type":"long"}}}}`
		res, err := esapi.IndicesCreateRequest{Index: ix.Name(), Body: strings.NewReader(body)}.Do(ctx, ix.Client())
		if err := answer("creating index", res, err, nil); err != nil {
			t.Fatal(err)
		}
		if err := ix.EnsureIndex(ctx); err == nil || !strings.Contains(err.Error(), "runId") {
			t.Fatalf("EnsureIndex on an index with runId as text = %v, want an error naming runId", err)
		}
	})
}

func TestContractPutTwiceLeavesOneDocument(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	ix := newIndex(t, nil)
	if err := ix.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	run := "r-" + suffix()
	d := sampleDoc(run, 7)
	for i, want := range []bool{true, false, false} {
		created, err := ix.Put(ctx, d)
		if err != nil {
			t.Fatalf("Put #%d: %v", i+1, err)
		}
		if created != want {
			t.Fatalf("Put #%d created = %v, want %v", i+1, created, want)
		}
	}
	n, err := ix.Count(ctx, run)
	if err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
}

func TestContractGet(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	ix := newIndex(t, nil)
	if err := ix.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	run := "r-" + suffix()
	want := sampleDoc(run, 3)
	if _, err := ix.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		job       int64
		wantFound bool
	}{
		{"present", 3, true},
		{"absent", 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := ix.Get(ctx, run, tc.job)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if found != tc.wantFound {
				t.Fatalf("found = %v, want %v", found, tc.wantFound)
			}
			if found && !sameDoc(got, want) {
				t.Fatalf("Get = %+v, want %+v", got, want)
			}
		})
	}
}

func TestContractCountByRun(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	ix := newIndex(t, nil)
	if err := ix.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	s := suffix()
	runs := map[string]int64{
		"r-" + s + "-a":         5,
		"r-" + s + "-b":         3,
		"r-" + s + "-ü x/\"q\"": 2, // characters that need escaping in JSON and URLs
	}
	for run, n := range runs {
		for j := range n {
			if _, err := ix.Put(ctx, sampleDoc(run, j+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	runs["r-"+s+"-none"] = 0
	runs["r-"+s] = 0 // a prefix of other runs matches nothing
	for run, want := range runs {
		t.Run(run, func(t *testing.T) {
			got, err := ix.Count(ctx, run)
			if err != nil {
				t.Fatalf("Count: %v", err)
			}
			if got != want {
				t.Fatalf("Count(%q) = %d, want %d", run, got, want)
			}
		})
	}
}

func TestContractBulk(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	ix := newIndex(t, nil)
	if err := ix.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	run := "r-" + suffix()
	bulk := func(lines ...any) (bool, []int) {
		t.Helper()
		var buf bytes.Buffer
		for _, l := range lines {
			b, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
		var got struct {
			Errors bool                              `json:"errors"`
			Items  []map[string]struct{ Status int } `json:"items"`
		}
		res, err := esapi.BulkRequest{Index: ix.Name(), Body: &buf}.Do(ctx, ix.Client())
		if err := answer("bulk", res, err, &got); err != nil {
			t.Fatal(err)
		}
		var statuses []int
		for _, it := range got.Items {
			for _, v := range it {
				statuses = append(statuses, v.Status)
			}
		}
		return got.Errors, statuses
	}
	meta := func(action string, job int64) map[string]any {
		return map[string]any{action: map[string]any{"_id": DocID(run, job)}}
	}
	errs, st := bulk(meta("index", 1), sampleDoc(run, 1), meta("create", 2), sampleDoc(run, 2), meta("create", 3), sampleDoc(run, 3))
	if errs || fmt.Sprint(st) != "[201 201 201]" {
		t.Fatalf("first bulk: errors=%v statuses=%v, want false [201 201 201]", errs, st)
	}
	errs, st = bulk(meta("create", 1), sampleDoc(run, 1), meta("index", 2), sampleDoc(run, 2),
		meta("create", 4), map[string]any{"runId": run, "jobId": 4, "unknownField": true})
	if !errs || fmt.Sprint(st) != "[409 200 400]" {
		t.Fatalf("second bulk: errors=%v statuses=%v, want true [409 200 400]", errs, st)
	}
	if n, err := ix.Count(ctx, run); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
}

func TestContractErrorAnswers(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	ix := newIndex(t, nil)
	if err := ix.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	missing := newIndex(t, nil) // never created
	run := "r-" + suffix()
	raw := func(body string) error {
		res, err := esapi.IndexRequest{Index: ix.Name(), DocumentID: DocID(run, 1), Body: strings.NewReader(body)}.Do(ctx, ix.Client())
		return answer("raw write", res, err, nil)
	}
	count := func(body string) error {
		res, err := esapi.CountRequest{Index: []string{ix.Name()}, Body: strings.NewReader(body)}.Do(ctx, ix.Client())
		return answer("raw count", res, err, nil)
	}
	tests := []struct {
		name       string
		call       func() error
		wantStatus int
		wantTypes  []string // any of
	}{
		{"get from a missing index", func() error { _, _, err := missing.Get(ctx, run, 1); return err },
			404, []string{"index_not_found_exception"}},
		{"count in a missing index", func() error { _, err := missing.Count(ctx, run); return err },
			404, []string{"index_not_found_exception"}},
		{"refresh of a missing index", func() error { return missing.Refresh(ctx) },
			404, []string{"index_not_found_exception"}},
		{"field outside the strict mapping", func() error { return raw(`{"runId":"` + run + `","jobId":1,"extra":1}`) },
			400, []string{"strict_dynamic_mapping_exception"}},
		{"string in a long field", func() error { return raw(`{"runId":"` + run + `","jobId":"not a number"}`) },
			400, []string{"document_parsing_exception", "mapper_parsing_exception"}},
		{"malformed JSON document", func() error { return raw(`{"runId":`) },
			400, []string{"document_parsing_exception", "mapper_parsing_exception", "x_content_parse_exception"}},
		{"unknown query", func() error { return count(`{"query":{"nonsense":{}}}`) },
			400, []string{"parsing_exception", "x_content_parse_exception"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error = %v, want an *Error", err)
			}
			if e.Status != tc.wantStatus || !contains(tc.wantTypes, e.Type) {
				t.Fatalf("error = %v, want status %d and type in %v", err, tc.wantStatus, tc.wantTypes)
			}
			if IsRetryable(err) {
				t.Fatalf("IsRetryable(%v) = true, want false", err)
			}
			if e.Reason == "" {
				t.Fatalf("error %v has no reason", err)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// injectFault asks optio-esstore (only) to fail requests on one index.
func injectFault(t *testing.T, f map[string]any) {
	t.Helper()
	b, _ := json.Marshal(f)
	res, err := http.Post(esURL+"/_optio/faults", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("injecting fault %s: status %d", b, res.StatusCode)
	}
}

// TestContractRetryableFaults_LocalStoreOnly needs fault injection, which
// only optio-esstore has: against a real Elasticsearch it is skipped, and
// that skip is not a pass of the contract.
func TestContractRetryableFaults_LocalStoreOnly(t *testing.T) {
	if !localStore {
		t.Skip("SKIPPED, NOT PASSED: fault injection (429/503/dropped connections) is a test aid of optio-esstore; real Elasticsearch at ES_URL cannot inject faults")
	}
	t.Log("running against optio-esstore with injected faults (a test aid, not Elasticsearch behaviour)")
	t.Parallel()
	ctx := ctxT(t)
	tests := []struct {
		name          string
		fault         map[string]any
		retries       int
		timeout       time.Duration
		wantErr       bool
		wantStatus    int
		wantRetryable bool
	}{
		{"429 without retries", map[string]any{"status": 429}, -1, 0, true, 429, true},
		{"503 without retries", map[string]any{"status": 503}, -1, 0, true, 503, true},
		{"502 without retries", map[string]any{"status": 502}, -1, 0, true, 502, true},
		{"504 without retries", map[string]any{"status": 504}, -1, 0, true, 504, true},
		{"500 is permanent", map[string]any{"status": 500}, -1, 0, true, 500, false},
		{"dropped connection", map[string]any{"drop": true}, -1, 0, true, 0, true},
		{"timeout", map[string]any{"delayMs": 2000}, -1, 200 * time.Millisecond, true, 0, true},
		{"two 503 absorbed by retries", map[string]any{"status": 503, "count": 2}, 3, 0, false, 0, false},
		{"two 429 absorbed by retries", map[string]any{"status": 429, "count": 2}, 3, 0, false, 0, false},
		{"429 outlasting retries", map[string]any{"status": 429, "count": 3}, 2, 0, true, 429, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ix := newIndex(t, func(c *Config) { c.MaxRetries = tc.retries })
			if err := ix.EnsureIndex(ctx); err != nil {
				t.Fatal(err)
			}
			f := map[string]any{"index": ix.Name(), "method": "PUT"}
			for k, v := range tc.fault {
				f[k] = v
			}
			injectFault(t, f)
			callCtx := ctx
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				callCtx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			created, err := ix.Put(callCtx, sampleDoc("r-"+suffix(), 1))
			if !tc.wantErr {
				if err != nil || !created {
					t.Fatalf("Put = %v, %v; want created", created, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Put error = %v, want an *Error", err)
			}
			if e.Status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", e.Status, err, tc.wantStatus)
			}
			if IsRetryable(err) != tc.wantRetryable || errors.Is(err, ErrRetryable) != tc.wantRetryable {
				t.Fatalf("IsRetryable(%v) = %v, want %v", err, IsRetryable(err), tc.wantRetryable)
			}
		})
	}
}
