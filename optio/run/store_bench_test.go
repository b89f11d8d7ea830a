package run

import (
	"context"
	"sync/atomic"
	"testing"
)

// BenchmarkAccount is the Redis script call process makes for every job:
// set the job's bit, count it, publish the run. Sequential, so ns/op is one
// round trip plus the script.
func BenchmarkAccount(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	r, err := s.Create(ctx, MaxX, MaxY)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Account(ctx, r.ID, int64(i%MaxX), Processed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccountParallel is the same call from many goroutines, as a
// process replica serving many jobs at once does.
func BenchmarkAccountParallel(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	r, err := s.Create(ctx, MaxX, MaxY)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Account(ctx, r.ID, next.Add(1)%MaxX, Processed); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecodeEvent is what the relay does with every event.
func BenchmarkDecodeEvent(b *testing.B) {
	payload := []byte(`{"id":"r-20261203-193512-7f3a","state":"running","x":"20000","y":"1000000",` +
		`"enqueued":"12000","processed":11000,"failed":"0","cancelled":"0","startedAt":"1796325312000",` +
		`"updatedAt":"1796325320000","next":"12000","last":"1796325320000000"}`)
	b.ReportAllocs()
	for range b.N {
		if _, err := DecodeEvent(payload); err != nil {
			b.Fatal(err)
		}
	}
}
