package relay_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"optio.dev/optio/config"
	"optio.dev/optio/run"
	"optio.dev/web/relay"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// harness is one relay on its own Redis prefix, and a store to make runs
// happen on that prefix.
type harness struct {
	t      *testing.T
	url    string // http://127.0.0.1:port
	store  *run.Store
	rdb    *redis.Client
	prefix string
	stop   func() error
}

type options struct {
	mod     func(*relay.Config)
	gateway string
}

// startRelay starts a relay on a random port and a fresh prefix. It fails
// the test when Redis is not there.
func startRelay(t *testing.T, o options) *harness {
	t.Helper()
	opt, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s is needed for the relay tests: %v", redisURL(), err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "optio-test:relay:" + hex.EncodeToString(b[:]) + ":"
	gateway := o.gateway
	if gateway == "" {
		gateway = "http://127.0.0.1:1" // nothing listens there
	}
	shared, err := config.Read(config.Map(map[string]string{
		"REDIS_URL": redisURL(), "OPTIO_PREFIX": prefix, "OPTIO_GATEWAY_URL": gateway,
	}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.Config{
		Shared:         shared,
		Addr:           "127.0.0.1:0",
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name()),
		ResyncInterval: time.Second,
	}
	if o.mod != nil {
		o.mod(&cfg)
	}
	srv, err := relay.New(cfg, os.DirFS("../dashboard/static"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	h := &harness{
		t: t, url: "http://" + ln.Addr().String(), rdb: rdb, prefix: prefix,
		store: run.NewStore(rdb, prefix, time.Hour),
	}
	stopped := false
	h.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		scancel()
		return <-done
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("relay stopped with %v", err)
		}
		cctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		keys, _ := rdb.Keys(cctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(cctx, keys...)
		}
		rdb.Close()
	})
	h.waitHealthy()
	return h
}

func (h *harness) waitHealthy() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(h.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("relay not healthy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dial opens a WebSocket as a page of the relay would.
func (h *harness) dial(ctx context.Context) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, "ws"+h.url[len("http"):]+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {h.url}},
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// message is what a browser gets.
type message struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
	Run  struct {
		run.Run
		MeasuredPerMinute *float64 `json:"measuredPerMinute"`
		ETASeconds        *float64 `json:"etaSeconds"`
	} `json:"run"`
	Throughput relay.Throughput `json:"throughput"`
}

func read(ctx context.Context, c *websocket.Conn) (message, error) {
	var m message
	_, b, err := c.Read(ctx)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode %s: %w", b, err)
	}
	return m, nil
}

// readUntil reads until ok accepts a message, and returns every message read.
func readUntil(ctx context.Context, c *websocket.Conn, ok func(message) bool) ([]message, error) {
	var all []message
	for {
		m, err := read(ctx, c)
		if err != nil {
			return all, err
		}
		all = append(all, m)
		if ok(m) {
			return all, nil
		}
	}
}

// process accounts jobs [from, to) of run id as processed, with workers
// goroutines, as the process function would.
func (h *harness) process(ctx context.Context, id string, from, to int64, workers int) error {
	jobs := make(chan int64)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			var err error
			for j := range jobs {
				if err == nil {
					_, err = h.store.Account(ctx, id, j, run.Processed)
				}
			}
			errs <- err
		}()
	}
	for j := from; j < to; j++ {
		jobs <- j
	}
	close(jobs)
	var first error
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// metric reads one sample of the relay's /metrics, 0 when absent.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// eventually polls cond until it holds or 20 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
