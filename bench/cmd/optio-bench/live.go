package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"optio.dev/local/supervisor"
)

// liveResult is the live view measurement.
type liveResult struct {
	Clients   int     `json:"clients"`
	Connected int     `json:"connected"`
	Messages  int     `json:"messages"`
	P50ms     float64 `json:"live_p50_ms"`
	P99ms     float64 `json:"live_p99_ms"`
}

// live connects n WebSocket clients to the relay for d while a run moves
// its counters, and measures, for every message that carries a newer
// updatedAt than the client saw before, the time from that updatedAt (the
// instant the counter changed in Redis, stamped by the script's caller) to
// the message's arrival.
func live(ctx context.Context, n int, d time.Duration) (liveResult, error) {
	url := strings.Replace(supervisor.DashboardURL, "http://", "ws://", 1) + "/ws"
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []float64
	res := liveResult{Clients: n}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			conn.SetReadLimit(1 << 20)
			mu.Lock()
			res.Connected++
			mu.Unlock()
			var last time.Time
			for {
				_, b, err := conn.Read(ctx)
				if err != nil {
					return
				}
				at := time.Now()
				var m struct {
					Run struct {
						UpdatedAt *time.Time `json:"updatedAt"`
					} `json:"run"`
				}
				if json.Unmarshal(b, &m) != nil || m.Run.UpdatedAt == nil {
					continue
				}
				u := *m.Run.UpdatedAt
				if !u.After(last) {
					continue // a periodic refresh, not a change
				}
				first := last.IsZero()
				last = u
				if first {
					continue // the snapshot sent on connect
				}
				mu.Lock()
				lat = append(lat, float64(at.Sub(u).Microseconds())/1000)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Messages = len(lat)
	if len(lat) == 0 {
		return res, fmt.Errorf("live: no change reached any of %d clients (%d connected)", n, res.Connected)
	}
	res.P50ms, res.P99ms = percentile(lat, 50), percentile(lat, 99)
	return res, nil
}
