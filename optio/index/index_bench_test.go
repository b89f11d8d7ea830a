package index

import (
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// benchDoc is a typical job document.
var benchDoc = Doc{RunID: "r-20261203-193512-7f3a", JobID: 123456, ProcessedAt: time.Now().UTC(),
	ReleasedAt: time.Now().UTC(), Attempt: 1, DurationMs: 5.123}

// BenchmarkEncodeDoc is the encoding of one document, done for every job.
func BenchmarkEncodeDoc(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		if _, err := json.Marshal(benchDoc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut writes documents from 16 goroutines (a process replica
// under load) to the Elasticsearch at ES_URL, or the local store.
func BenchmarkPut(b *testing.B) {
	name := "optio_bench_put_" + suffix()
	ix, err := New(Config{URL: esURL, Index: name, Username: os.Getenv("ES_USERNAME"), Password: os.Getenv("ES_PASSWORD")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := ix.EnsureIndex(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if res, err := ix.Client().Indices.Delete([]string{name}); err == nil {
			res.Body.Close()
		}
	})
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := benchDoc
		d.RunID = "r-bench-" + name
		for pb.Next() {
			d.JobID = next.Add(1)
			if _, err := ix.Put(ctx, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
