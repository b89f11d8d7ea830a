// Package relay is Optio's live view: a small long-running server that
// subscribes to the Redis channel every change of a run is published on and
// pushes the run's state to browsers over WebSocket (/ws), coalesced to at
// most one message per SendInterval per browser. It also serves the
// dashboard (embedded), forwards /function/run, /function/stop and
// /function/status to the OpenFaaS gateway so the page has one origin, and
// answers /healthz and /metrics.
//
// A slow or dead browser never holds anything up: the hub never waits for
// a browser, each browser has its own writer with a one-slot queue that
// keeps only the newest state, a write that takes longer than WriteTimeout
// disconnects it, and so does a ping left unanswered.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"optio.dev/optio/run"
)

// Server is the relay. Build it with New, run it with Run or Serve.
type Server struct {
	cfg     Config
	hub     *Hub
	rdb     *redis.Client
	source  *source
	metrics *metrics
	files   fs.FS
	gateway *url.URL
	handler http.Handler

	// browsers ends when the relay shuts down; every browser loop watches it.
	browsers      context.Context
	closeBrowsers context.CancelFunc
	wg            sync.WaitGroup
	mu            sync.Mutex
	connected     int
}

// New builds a relay from cfg, serving the dashboard files in files. It
// connects to nothing until Serve or Run.
func New(cfg Config, files fs.FS) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(cfg.Shared.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	gw, err := url.Parse(cfg.Shared.GatewayURL)
	if err != nil {
		return nil, fmt.Errorf("OPTIO_GATEWAY_URL: %w", err)
	}
	m, err := newMetrics()
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opt)
	s := &Server{
		cfg:     cfg,
		hub:     NewHub(cfg.Now),
		rdb:     rdb,
		metrics: m,
		files:   files,
		gateway: gw,
	}
	s.source = &source{
		rdb: rdb, store: run.NewStore(rdb, cfg.Shared.Prefix, 0), hub: s.hub,
		log: cfg.Logger, resync: cfg.ResyncInterval, metrics: m,
	}
	s.browsers, s.closeBrowsers = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s, nil
}

// Handler is the relay's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	proxy := s.proxy()
	for _, p := range []string{"/function/run", "/function/stop", "/function/status"} {
		mux.Handle(p, proxy)
	}
	files := http.FileServerFS(s.files)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+" is not served here")
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy",
			"default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		files.ServeHTTP(w, r)
	}))
	return mux
}

// Serve runs the relay on ln until ctx ends, then shuts down gracefully:
// it stops accepting, tells every browser it is going away, and waits for
// them (at most ShutdownTimeout). ln is closed when Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srcCtx, stopSource := context.WithCancel(context.Background())
	srcDone := make(chan error, 1)
	go func() { srcDone <- s.source.Run(srcCtx) }()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.cfg.Logger.Info("relay listening", "addr", ln.Addr().String(),
		"channel", s.source.store.Channel(), "gateway", s.gateway.String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serve relay: %w", err)
	case err = <-srcDone:
		if err != nil {
			err = fmt.Errorf("relay event source: %w", err)
		}
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("shut down relay: %w", serr)
	}
	s.closeBrowsers()
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-sctx.Done():
		s.cfg.Logger.Warn("browsers did not close in time", "timeout", s.cfg.ShutdownTimeout)
	}
	stopSource()
	if serr := <-srcDone; serr != nil && err == nil && ctx.Err() == nil {
		err = serr
	}
	if cerr := s.rdb.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close redis client: %w", cerr)
	}
	s.cfg.Logger.Info("relay stopped")
	return err
}

// Run listens on cfg.Addr and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on RELAY_ADDR=%s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// serveWS upgrades a browser to a WebSocket and feeds it.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.metrics.rejected.WithLabelValues("origin").Inc()
		writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q may not open the live view", r.Header.Get("Origin")))
		return
	}
	s.mu.Lock()
	if s.connected >= s.cfg.MaxBrowsers || s.browsers.Err() != nil {
		s.mu.Unlock()
		s.metrics.rejected.WithLabelValues("capacity").Inc()
		writeError(w, http.StatusServiceUnavailable, "too many browsers connected; try again later")
		return
	}
	s.connected++
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.connected--
		s.mu.Unlock()
		s.wg.Done()
	}()

	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		// Accept has answered the request already.
		s.metrics.rejected.WithLabelValues("upgrade").Inc()
		return
	}
	s.metrics.connects.Inc()
	s.metrics.browsers.Inc()
	reason := s.serveBrowser(s.browsers, conn)
	s.metrics.browsers.Dec()
	s.metrics.disconnects.WithLabelValues(reason).Inc()
	if reason == reasonSlow || reason == reasonPing {
		s.cfg.Logger.Info("browser disconnected", "reason", reason, "remote", r.RemoteAddr)
	}
}

// originAllowed tells whether a request may come from the page that sent
// it: no Origin (not a browser), the relay's own origin, or one matching
// AllowedOrigins. It agrees with websocket.Accept's own check.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range s.cfg.AllowedOrigins {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// proxy forwards the three functions the page calls to the gateway, with
// the page's origin checked and its body bounded.
func (s *Server) proxy() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.gateway)
			pr.SetXForwarded()
			pr.Out.Header.Del("Cookie")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// Reading the page's body stopped at the limit: the request is
			// at fault, not the gateway.
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.metrics.rejected.WithLabelValues("body").Inc()
				writeError(w, http.StatusBadRequest, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit))
				return
			}
			s.metrics.proxyErrors.Inc()
			s.cfg.Logger.Warn("gateway unreachable", "path", r.URL.Path, "err", err)
			writeError(w, http.StatusBadGateway, "the OpenFaaS gateway at "+s.gateway.Host+" did not answer: is it running?")
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.originAllowed(r) {
			s.metrics.rejected.WithLabelValues("origin").Inc()
			writeError(w, http.StatusForbidden, fmt.Sprintf("origin %q may not call Optio's functions through the relay", r.Header.Get("Origin")))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxProxyBody)
		rp.ServeHTTP(w, r)
	})
}

// serveHealth answers 200 when the relay serves and Redis answers, 503
// when Redis does not.
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	n := s.connected
	s.mu.Unlock()
	body := map[string]any{"status": "ok", "browsers": n}
	status := http.StatusOK
	if !s.source.healthy.Load() {
		body["status"] = "redis unreachable"
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
