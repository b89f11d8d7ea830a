package release

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// countingPublisher publishes nothing: it takes every job the planner
// stamps, so a benchmark measures the planner and its commits alone.
type countingPublisher struct{ n int64 }

func (p *countingPublisher) Batch(ctx context.Context, n int, stamp func(int) (queue.Job, bool)) (int, error) {
	i := 0
	for ; i < n; i++ {
		if _, ok := stamp(i); !ok {
			break
		}
	}
	p.n += int64(i)
	return i, nil
}

// BenchmarkTick releases b.N jobs at the highest rate (Y = 1,000,000 a
// minute: one release every 60 µs) through the planner and its commits to
// Redis, with a publisher that publishes nothing. ns/op near 60,000 means
// the planner keeps the pace; more means it cannot.
func BenchmarkTick(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		b.Fatalf("this benchmark needs Redis at 127.0.0.1:6379 (make services): %v", err)
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	prefix := "bench:" + b.Name() + ":" + hex.EncodeToString(r[:]) + ":"
	b.Cleanup(func() {
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	store := run.NewStore(rdb, prefix, time.Hour)
	if _, err := store.Create(ctx, int64(max(b.N, 1)), run.MaxY); err != nil {
		b.Fatal(err)
	}
	pub := &countingPublisher{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ReportAllocs()
	b.ResetTimer()
	for pub.n < int64(b.N) {
		if _, err := Tick(ctx, store, pub, Config{MinRun: time.Hour}, log); err != nil {
			b.Fatal(err)
		}
	}
}
