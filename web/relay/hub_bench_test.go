package relay

import (
	"sync"
	"testing"
	"time"

	"optio.dev/optio/run"
)

// BenchmarkHubFanOut is one counter change reaching 100 browsers' writers:
// Update, then every writer wakes on the changed channel and takes the
// newest message (encoded once, shared by all). ns/op is the time from
// Update until the last of the 100 has the message.
func BenchmarkHubFanOut(b *testing.B) {
	const browsers = 100
	h := NewHub(time.Now)
	start := time.Now()
	r := run.Run{ID: "r-bench", State: run.Running, XTotal: 1 << 40, YPerMinute: run.MaxY, StartedAt: &start}
	h.Update(r)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	seen := 0 // writers that have the current sequence number
	want := uint64(0)
	done := make(chan struct{})
	var wg, ready sync.WaitGroup
	for range browsers {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			_, _, changed := h.Latest()
			ready.Done()
			for {
				select {
				case <-done:
					return
				case <-changed:
				}
				var seq uint64
				var msg []byte
				seq, msg, changed = h.Latest()
				if len(msg) == 0 {
					b.Error("empty message")
				}
				mu.Lock()
				if seq >= want {
					seen++
					cond.Broadcast()
				}
				mu.Unlock()
			}
		}()
	}
	ready.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now := time.Now()
		r.Processed, r.Enqueued, r.UpdatedAt = int64(i+1), int64(i+1), &now
		mu.Lock()
		seen, want = 0, uint64(i+2)
		mu.Unlock()
		h.Update(r)
		mu.Lock()
		for seen < browsers {
			cond.Wait()
		}
		mu.Unlock()
	}
	b.StopTimer()
	close(done)
	wg.Wait()
}
