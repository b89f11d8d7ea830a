package replica

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		user   string
		answer func(w http.ResponseWriter, r *http.Request)
		want   int
	}{
		{"ready replicas", "", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"name":"process","replicas":3,"availableReplicas":2}`)
		}, 2},
		{"basic auth sent", "admin", func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pw" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, `{"availableReplicas":4}`)
		}, 4},
		{"unauthorized", "", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, Unknown},
		{"unknown function", "", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, Unknown},
		{"no count", "", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"name":"process"}`) }, Unknown},
		{"not JSON", "", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `<html>`) }, Unknown},
		{"too slow", "", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, Unknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/system/function/process" {
					http.NotFound(w, r)
					return
				}
				tc.answer(w, r)
			}))
			defer srv.Close()
			c, err := New(Config{GatewayURL: srv.URL + "/", Function: "process", User: tc.user, Password: "pw", Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Count(context.Background()); got != tc.want {
				t.Fatalf("Count = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCountUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Config{GatewayURL: url, Function: "process"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Count(context.Background()); got != Unknown {
		t.Fatalf("Count with no gateway = %d, want %d", got, Unknown)
	}
}

func TestCountIsCachedForTTL(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := asked.Add(1)
		fmt.Fprintf(w, `{"availableReplicas":%d}`, n)
	}))
	defer srv.Close()
	clk := &clock{t: time.Unix(1000, 0)}
	c, err := New(Config{GatewayURL: srv.URL, Function: "process", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := c.Count(context.Background()); got != 1 {
				t.Errorf("Count = %d, want the first answer 1", got)
			}
		}()
	}
	wg.Wait()
	clk.add(999 * time.Millisecond)
	if got := c.Count(context.Background()); got != 1 || asked.Load() != 1 {
		t.Fatalf("within the TTL: Count = %d after %d requests, want 1 after 1", got, asked.Load())
	}
	clk.add(time.Millisecond)
	if got := c.Count(context.Background()); got != 2 || asked.Load() != 2 {
		t.Fatalf("after the TTL: Count = %d after %d requests, want 2 after 2", got, asked.Load())
	}
}

func TestNewNeedsGatewayAndFunction(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{Function: "process"}, {GatewayURL: "http://127.0.0.1:8080"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): want an error", cfg)
		}
	}
}
