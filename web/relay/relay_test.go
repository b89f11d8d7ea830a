package relay_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"optio.dev/optio/run"
	"optio.dev/web/relay"
)

func TestSnapshotOnConnect(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := h.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	m, err := read(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != "state" || m.Run.State != run.Idle || m.Run.ID != "" {
		t.Fatalf("first message before any run = %+v, want an idle state", m)
	}

	r, err := h.store.Create(ctx, 10, 600)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.process(ctx, r.ID, 0, 3, 1); err != nil {
		t.Fatal(err)
	}
	// A browser that connects now gets the current state at once.
	c2, err := h.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	m, err = read(ctx, c2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Run.ID != r.ID || m.Run.Processed != 3 || m.Run.State != run.Running || m.Run.XTotal != 10 || m.Run.ETASeconds == nil {
		t.Fatalf("snapshot = %+v, want run %s running with 3 processed and an ETA", m.Run, r.ID)
	}
}

// TestManyBrowsersGetEveryFinalState: 200 browsers at once each see the
// final state of every run, in order, never going back.
func TestManyBrowsersGetEveryFinalState(t *testing.T) {
	t.Parallel()
	const browsers = 200
	h := startRelay(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conns := make([]*websocket.Conn, browsers)
	for i := range conns {
		c, err := h.dial(ctx)
		if err != nil {
			t.Fatalf("browser %d: %v", i, err)
		}
		defer c.CloseNow()
		if _, err := read(ctx, c); err != nil {
			t.Fatalf("browser %d snapshot: %v", i, err)
		}
		conns[i] = c
	}

	// Each browser reads until it has seen cond, checking that the run's
	// counters never go back.
	watch := func(cond func(message) bool) []error {
		var wg sync.WaitGroup
		errs := make([]error, browsers)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last message
				_, errs[i] = readUntil(ctx, c, func(m message) bool {
					if m.Run.ID == last.Run.ID && (m.Run.Processed < last.Run.Processed || m.Seq <= last.Seq) {
						errs[i] = fmt.Errorf("went back: %+v after %+v", m.Run.Run, last.Run.Run)
					}
					last = m
					return cond(m)
				})
			}()
		}
		wg.Wait()
		return errs
	}

	// Run A completes.
	a, err := h.store.Create(ctx, 300, 6000)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		errs = watch(func(m message) bool {
			return m.Run.ID == a.ID && m.Run.State == run.Completed && m.Run.Processed == 300
		})
	}()
	if err := h.process(ctx, a.ID, 0, 300, 8); err != nil {
		t.Fatal(err)
	}
	<-done
	for i, err := range errs {
		if err != nil {
			t.Fatalf("browser %d, run A: %v", i, err)
		}
	}

	// Run B is stopped mid-way; its queued jobs are then counted cancelled.
	b, err := h.store.Create(ctx, 1000, 6000)
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		errs = watch(func(m message) bool {
			return m.Run.ID == b.ID && m.Run.State == run.Stopped && m.Run.Processed == 50 && m.Run.Cancelled == 10
		})
	}()
	if err := h.process(ctx, b.ID, 0, 50, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for j := int64(50); j < 60; j++ {
		if _, err := h.store.Account(ctx, b.ID, j, run.Cancelled); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	for i, err := range errs {
		if err != nil {
			t.Fatalf("browser %d, run B: %v", i, err)
		}
	}
	if got := h.metric("optio_relay_browsers"); got != browsers {
		t.Fatalf("optio_relay_browsers = %v, want %d", got, browsers)
	}
}

// TestSilentBrowserIsDropped: a client that completes the handshake and
// then never reads is disconnected, while the others get every state.
func TestSilentBrowserIsDropped(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{mod: func(c *relay.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.PingTimeout = 300 * time.Millisecond
		c.WriteTimeout = 300 * time.Millisecond
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	silent := silentBrowser(t, h)
	defer silent.Close()

	const readers = 5
	conns := make([]*websocket.Conn, readers)
	for i := range conns {
		c, err := h.dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		conns[i] = c
	}
	eventually(t, "6 browsers connected", func() bool { return h.metric("optio_relay_browsers") == readers+1 })

	r, err := h.store.Create(ctx, 500, 6000)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = readUntil(ctx, c, func(m message) bool {
				return m.Run.ID == r.ID && m.Run.State == run.Completed
			})
			// Go on reading, as a live page does, so pings are answered.
			go func() {
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
				}
			}()
		}()
	}
	if err := h.process(ctx, r.ID, 0, 500, 8); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("browsers %v, disconnects ping %v slow %v closed %v", h.metric("optio_relay_browsers"),
				h.metric(`optio_relay_disconnects_total{reason="ping"}`), h.metric(`optio_relay_disconnects_total{reason="slow"}`),
				h.metric(`optio_relay_disconnects_total{reason="closed"}`))
		}
	}()
	eventually(t, "the silent browser dropped", func() bool {
		return h.metric("optio_relay_browsers") == readers &&
			h.metric(`optio_relay_disconnects_total{reason="ping"}`)+h.metric(`optio_relay_disconnects_total{reason="slow"}`) >= 1
	})
}

// silentBrowser upgrades a raw TCP connection to a WebSocket and never
// reads from it again.
func silentBrowser(t *testing.T, h *harness) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(h.url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", host, h.url)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("silent browser's upgrade answered %s", resp.Status)
	}
	return conn
}

// TestBrowsersComeAndGo: goroutines and open files return to where they
// were, and the heap does not grow, after rounds of 100 browsers
// connecting and leaving, half with a close frame and half dropping the
// connection.
// Not parallel, so other tests' goroutines and allocations do not count.
func TestBrowsersComeAndGo(t *testing.T) {
	h := startRelay(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := h.store.Create(ctx, 100, 600); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	before := runtime.NumGoroutine()
	fdsBefore := openFiles(t)
	var heapAfterFirst uint64
	for round := 0; round < 4; round++ {
		conns := make([]*websocket.Conn, 100)
		for i := range conns {
			c, err := h.dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := read(ctx, c); err != nil {
				t.Fatal(err)
			}
			conns[i] = c
		}
		for i, c := range conns {
			if i%2 == 0 {
				c.Close(websocket.StatusNormalClosure, "bye")
			} else {
				c.CloseNow() // gone without a word
			}
		}
		eventually(t, "every browser gone", func() bool { return h.metric("optio_relay_browsers") == 0 })
		if round == 0 {
			heapAfterFirst = heapInUse()
		}
	}
	// Rounds 2 to 4 connected 300 browsers; keeping even 16 KiB of each
	// would show as 4.8 MiB.
	grown := int64(heapInUse()) - int64(heapAfterFirst)
	t.Logf("heap in use changed by %d KiB over rounds 2 to 4", grown>>10)
	if grown > 4<<20 {
		t.Errorf("heap grew by %d KiB over three rounds of browsers", grown>>10)
	}
	http.DefaultClient.CloseIdleConnections()
	eventually(t, "goroutines back to their number before", func() bool {
		return runtime.NumGoroutine() <= before
	})
	eventually(t, "open files back to their number before", func() bool {
		return openFiles(t) <= fdsBefore
	})
}

// TestCoalescing: a burst of changes reaches a browser as few messages, at
// most one per SendInterval, the latest state last.
func TestCoalescing(t *testing.T) {
	t.Parallel()
	const interval = 250 * time.Millisecond
	h := startRelay(t, options{mod: func(c *relay.Config) { c.SendInterval = interval }})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	r, err := h.store.Create(ctx, 1000, 60000)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, err := read(ctx, c); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- h.process(ctx, r.ID, 0, 1000, 16) }()
	msgs, err := readUntil(ctx, c, func(m message) bool { return m.Run.Processed == 1000 })
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(began)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The relay never sends more often than once per interval (plus the
	// message already due when the burst began).
	if limit := int(elapsed/interval) + 2; len(msgs) > limit {
		t.Fatalf("%d messages in %s: more than one per %s", len(msgs), elapsed, interval)
	}
	if len(msgs) >= 1000 {
		t.Fatalf("%d messages for 1000 changes: nothing coalesced", len(msgs))
	}
	last := msgs[len(msgs)-1]
	if last.Run.State != run.Completed {
		t.Fatalf("last message %+v is not the final state", last.Run.Run)
	}
	if h.metric("optio_relay_messages_dropped_total") == 0 {
		t.Fatal("no coalesced state counted as dropped")
	}
}

// TestResync: a change whose event was lost still reaches browsers, from
// the periodic reread.
func TestResync(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := h.store.Create(ctx, 10, 600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// Change the run behind the channel's back.
	if err := h.rdb.HSet(ctx, h.prefix+"run:"+r.ID, "processed", 7).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := readUntil(ctx, c, func(m message) bool { return m.Run.Processed == 7 }); err != nil {
		t.Fatal(err)
	}
}

func TestOriginChecked(t *testing.T) {
	t.Parallel()
	var forwarded sync.Map
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded.Store(r.Header.Get("Origin"), true)
		w.WriteHeader(http.StatusOK)
	})) // a fake gateway
	t.Cleanup(gw.Close)
	h := startRelay(t, options{gateway: gw.URL, mod: func(c *relay.Config) {
		c.AllowedOrigins = []string{"dash.example.com", "https://*.example.org"}
	}})
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{h.url, true},
		{"http://dash.example.com", true},
		{"https://a.example.org", true},
		{"http://a.example.org", false},
		{"http://evil.example.net", false},
		{"null", false},
		{"http://127.0.0.1:1", false},
	}
	for _, tt := range tests {
		t.Run("origin "+tt.origin, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
			if tt.ok {
				if err != nil {
					t.Fatalf("upgrade refused: %v", err)
				}
				c.CloseNow()
			} else {
				if err == nil {
					c.CloseNow()
					t.Fatal("upgrade accepted")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("answer %v, want 403", resp)
				}
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/function/stop", nil)
			req.Header = hdr.Clone()
			pr, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			pr.Body.Close()
			if tt.ok != (pr.StatusCode == http.StatusOK) {
				t.Fatalf("POST /function/stop from %q answered %d", tt.origin, pr.StatusCode)
			}
		})
	}
}

func TestProxy(t *testing.T) {
	t.Parallel()
	type seen struct{ method, path, body string }
	got := make(chan seen, 10)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":"a run is already running","state":"running"}`)
	})) // a fake gateway that always answers 409
	defer gw.Close()
	h := startRelay(t, options{gateway: gw.URL})

	tests := []struct {
		method, path, body string
		forwarded          bool
	}{
		{http.MethodPost, "/function/run", `{"x":5,"y":6}`, true},
		{http.MethodPost, "/function/stop", "", true},
		{http.MethodGet, "/function/status", "", true},
		{http.MethodPost, "/function/process", `{}`, false},
		{http.MethodGet, "/function/run/../process", "", false},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, h.url+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !tt.forwarded {
			if resp.StatusCode < 400 {
				t.Errorf("%s %s answered %d, want it refused", tt.method, tt.path, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "already running") {
			t.Errorf("%s %s: %d %s, want the gateway's 409", tt.method, tt.path, resp.StatusCode, b)
		}
		s := <-got
		if s != (seen{tt.method, tt.path, tt.body}) {
			t.Errorf("gateway saw %+v", s)
		}
	}
	select {
	case s := <-got:
		t.Errorf("forwarded what it should not: %+v", s)
	default:
	}

	// A request body larger than the limit is not forwarded whole, and the
	// page hears why: 400 with {"error"}, as run itself would answer, not
	// a 502 blaming the gateway.
	resp, err := http.Post(h.url+"/function/run", "application/json", strings.NewReader(strings.Repeat(" ", relay.MaxProxyBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || body["error"] == "" {
		t.Errorf("oversized body answered %d %v, want 400 with an error", resp.StatusCode, body)
	}
}

func TestProxyGatewayDown(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{})
	resp, err := http.Get(h.url + "/function/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body["error"], "gateway") {
		t.Fatalf("gateway down: %d %v, want 502 with an error", resp.StatusCode, body)
	}
}

func TestServesDashboard(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{})
	for _, p := range []struct{ path, ctype, contains string }{
		{"/", "text/html", "<title>Optio</title>"},
		{"/app.js", "javascript", "WebSocket"},
		{"/style.css", "text/css", "--accent"},
	} {
		resp, err := http.Get(h.url + p.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), p.ctype) || !strings.Contains(string(b), p.contains) {
			t.Errorf("GET %s: %d %s", p.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no content security policy", p.path)
		}
	}
}

// TestBrowserMaySendNothing: a browser that sends a message, or one larger
// than the limit, is disconnected.
func TestBrowserMaySendNothing(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{})
	for _, size := range []int{10, relay.MaxReadBytes * 4} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := h.dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", size))); err != nil {
			t.Fatal(err)
		}
		for {
			if _, _, err = c.Read(ctx); err != nil {
				break
			}
		}
		if s := websocket.CloseStatus(err); s != websocket.StatusPolicyViolation && s != websocket.StatusMessageTooBig {
			t.Errorf("%d bytes sent: connection ended with %v, want a policy or size close", size, err)
		}
		c.CloseNow()
		cancel()
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	h := startRelay(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := h.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, err := read(ctx, c); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	_, _, err = c.Read(ctx)
	if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
		t.Fatalf("browser saw %v, want a going-away close", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("relay stopped with %v", err)
	}
	if _, err := http.Get(h.url + "/healthz"); err == nil {
		t.Fatal("relay still answers after shutdown")
	} else if !errors.Is(err, errConnRefused(err)) {
		t.Logf("after shutdown: %v", err)
	}
}

func errConnRefused(err error) error { return err }

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting open files: %v", err)
	}
	return len(fds)
}
