package esstore

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"optio.dev/optio/index"
)

// BenchmarkIndexClientCreate32Writers measures single-document creates
// (op_type=create, one HTTP request per document, each acknowledged after
// its group commit's fsync) through optio/index against this store, from
// 32 concurrent writers. It reports docs/s.
func BenchmarkIndexClientCreate32Writers(b *testing.B) {
	cfg, err := ReadConfig(os.Getenv) // ESSTORE_BATCH_DELAY / ESSTORE_BATCH_SIZE tune the group commit
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(b.TempDir(), StoreOptions{BatchDelay: cfg.BatchDelay, BatchSize: cfg.BatchSize})
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(s, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() { srv.Close(); s.Close() }()
	ix, err := index.New(index.Config{URL: srv.URL, Index: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := ix.EnsureIndex(ctx); err != nil {
		b.Fatal(err)
	}
	const writers = 32
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var job atomic.Int64
	now := time.Now()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j := job.Add(1)
			created, err := ix.Put(ctx, index.Doc{RunID: "bench", JobID: j, ProcessedAt: now, ReleasedAt: now, Attempt: 1, DurationMs: 1})
			if err != nil || !created {
				b.Errorf("Put %d: %v %v", j, created, err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "docs/s")
	// CPU (client and server together, this process) per document: on a
	// shared machine docs/s follows the other load, this figure does not.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/doc")
	if n, err := ix.Count(ctx, "bench"); err != nil || n != int64(b.N) {
		b.Fatalf("Count = %d, %v; want %d", n, err, b.N)
	}
}

// BenchmarkCountOneRunAmongMillion counts the documents of one run (a term
// on runId) in an index of 1,000,000 documents from 100 runs: one read of
// the counts bucket, whatever the index size.
func BenchmarkCountOneRunAmongMillion(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	mustCreate(b, s, "jobs")
	const docs, runs, batch = 1_000_000, 100, 20_000
	for start := 0; start < docs; start += batch {
		ws := make([]Write, batch)
		for i := range ws {
			j := start + i
			ws[i] = Write{Action: "create", Index: "jobs", ID: strconv.Itoa(j),
				Source: []byte(`{"runId":"r-` + strconv.Itoa(j%runs) + `","jobId":` + strconv.Itoa(j) + `}`)}
		}
		if _, err := s.WriteDocs(ws); err != nil {
			b.Fatal(err)
		}
	}
	q := Query{Field: "runId", Value: "r-42"}
	for b.Loop() {
		n, e := s.Count("jobs", q)
		if e != nil || n != docs/runs {
			b.Fatalf("Count = %d, %v; want %d", n, e, docs/runs)
		}
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
