package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	providertypes "github.com/openfaas/faas-provider/types"
)

// fakeGateway is a FAKE OpenFaaS gateway for these tests: it serves
// GET /system/namespaces, GET /system/functions (with annotations) and
// POST /function/NAME, records the invocations and can go down and come
// back on the same address. The real gateway is covered by the e2e suite.
type fakeGateway struct {
	t    testing.TB
	addr string

	// user and password, when set, are required on /system.
	user, password string
	// namespaces answers /system/namespaces; nil answers [].
	namespaces []string
	// systemDown makes /system answer 503, as when the provider is away.
	systemDown atomic.Bool

	mu        sync.Mutex
	functions map[string]fakeFunction
	calls     []fakeCall
	srv       *http.Server
	served    chan struct{}

	inflight, maxInflight atomic.Int64
	conns                 atomic.Int64 // TCP connections accepted
}

// fakeFunction is one deployed function of the fake gateway.
type fakeFunction struct {
	Name        string
	Annotations map[string]string
	// Handle answers an invocation; nil answers 200.
	Handle func(w http.ResponseWriter, r *http.Request)
}

// fakeCall is one invocation the fake gateway received.
type fakeCall struct {
	Function string
	Header   http.Header
	Body     string
}

func newFakeGateway(t testing.TB, fns ...fakeFunction) *fakeGateway {
	t.Helper()
	g := &fakeGateway{t: t, functions: map[string]fakeFunction{}}
	g.set(fns...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the fake gateway: %v", err)
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(g.down)
	return g
}

func (g *fakeGateway) URL() string { return "http://" + g.addr }

func (g *fakeGateway) serve(ln net.Listener) {
	srv := &http.Server{Handler: g, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			g.conns.Add(1)
		}
	}}
	done := make(chan struct{})
	g.mu.Lock()
	g.srv, g.served = srv, done
	g.mu.Unlock()
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			g.t.Errorf("fake gateway: %v", err)
		}
	}()
}

// down closes the listener and every connection: the gateway is unreachable.
func (g *fakeGateway) down() {
	g.mu.Lock()
	srv, done := g.srv, g.served
	g.srv = nil
	g.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-done
}

// up listens again on the same address.
func (g *fakeGateway) up() {
	g.t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatalf("listen again on %s: %v", g.addr, err)
	}
	g.serve(ln)
}

// set replaces the deployed functions.
func (g *fakeGateway) set(fns ...fakeFunction) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.functions = map[string]fakeFunction{}
	for _, f := range fns {
		g.functions[f.Name] = f
	}
}

// callsTo returns the invocations fn received so far.
func (g *fakeGateway) callsTo(fn string) []fakeCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []fakeCall
	for _, c := range g.calls {
		if c.Function == fn {
			out = append(out, c)
		}
	}
	return out
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/system/"):
		g.system(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/function/"):
		g.invoke(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) system(w http.ResponseWriter, r *http.Request) {
	if g.systemDown.Load() {
		http.Error(w, "provider unavailable", http.StatusServiceUnavailable)
		return
	}
	if g.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != g.user || p != g.password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/system/namespaces":
		ns := g.namespaces
		if ns == nil {
			ns = []string{}
		}
		_ = json.NewEncoder(w).Encode(ns)
	case "/system/functions":
		g.mu.Lock()
		list := []providertypes.FunctionStatus{}
		for _, f := range g.functions {
			a := map[string]string{}
			for k, v := range f.Annotations {
				a[k] = v
			}
			list = append(list, providertypes.FunctionStatus{
				Name: f.Name, Image: "fake/" + f.Name, Namespace: r.URL.Query().Get("namespace"),
				Replicas: 1, AvailableReplicas: 1, Annotations: &a,
			})
		}
		g.mu.Unlock()
		_ = json.NewEncoder(w).Encode(list)
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) invoke(w http.ResponseWriter, r *http.Request) {
	n := g.inflight.Add(1)
	defer g.inflight.Add(-1)
	for {
		m := g.maxInflight.Load()
		if n <= m || g.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	name := strings.TrimPrefix(r.URL.Path, "/function/")
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	f, ok := g.functions[name]
	g.calls = append(g.calls, fakeCall{Function: name, Header: r.Header.Clone(), Body: string(body)})
	g.mu.Unlock()
	switch {
	case !ok:
		http.Error(w, "no such function: "+name, http.StatusNotFound)
	case f.Handle == nil:
		_, _ = io.WriteString(w, "ok")
	default:
		f.Handle(w, r)
	}
}
