package provider

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// spec is what a replica runs; it is fixed for the life of the replica (an
// update starts new replicas with a new spec).
type spec struct {
	function string
	binary   string
	env      []string // without PORT
	dir      string   // working directory
	logFile  string   // stdout and stderr are appended here
}

// replica is one process of a function. It keeps that process running: when
// the process dies it is started again, on a new port, after a backoff. It is
// ready for calls while its process answers GET /_/health.
type replica struct {
	spec *spec
	cfg  *Config
	log  *slog.Logger

	ready    atomic.Pointer[url.URL] // base URL while healthy, nil otherwise
	pid      atomic.Int64
	inflight atomic.Int64
	served   atomic.Int64 // calls given to this replica
	removed  atomic.Bool  // set before draining: no new calls
	restarts atomic.Int64

	stopOnce sync.Once
	stop     chan struct{} // closed to stop the process for good
	done     chan struct{} // closed once the process is gone for good
}

// healthClient checks replicas; it keeps no connections.
var healthClient = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

func startReplica(s *spec, cfg *Config) *replica {
	r := &replica{
		spec: s,
		cfg:  cfg,
		log:  cfg.Logger.With("function", s.function),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go r.run()
	return r
}

// acquire reserves the replica for one call; release must follow.
func (r *replica) acquire() (*url.URL, bool) {
	u := r.ready.Load()
	if u == nil {
		return nil, false
	}
	r.inflight.Add(1)
	if r.removed.Load() {
		r.inflight.Add(-1)
		return nil, false
	}
	r.served.Add(1)
	return u, true
}

func (r *replica) release() { r.inflight.Add(-1) }

// drain stops new calls, waits up to timeout (or until abort is closed) for
// calls in flight, then stops the process and waits until it is gone.
func (r *replica) drain(timeout time.Duration, abort <-chan struct{}) {
	r.removed.Store(true)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.inflight.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-abort:
			deadline = time.Now()
		case <-tick.C:
		}
	}
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

func (r *replica) stopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// run keeps the process running until stop is closed.
func (r *replica) run() {
	defer close(r.done)
	backoff := r.cfg.RestartBackoff
	for {
		began := time.Now()
		err := r.runOnce()
		if r.stopping() {
			return
		}
		if time.Since(began) > 30*time.Second {
			backoff = r.cfg.RestartBackoff
		}
		r.log.Warn("replica stopped, starting it again", "error", err, "backoff", backoff)
		select {
		case <-r.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		r.restarts.Add(1)
	}
}

// process is one started process and the result of waiting for it.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid once exited is closed
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// runOnce starts the process, waits until it is healthy, and returns when it
// dies or when the replica is stopped.
func (r *replica) runOnce() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := r.start(port)
	if err != nil {
		return err
	}
	r.pid.Store(int64(p.cmd.Process.Pid))
	defer r.pid.Store(0)

	base := &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if err := r.waitHealthy(p, base); err != nil {
		r.terminate(p)
		return err
	}
	r.ready.Store(base)
	select {
	case <-p.exited:
		r.ready.Store(nil)
		if p.err == nil {
			return errors.New("process exited with status 0")
		}
		return fmt.Errorf("process exited: %w", p.err)
	case <-r.stop:
		r.ready.Store(nil)
		r.terminate(p)
		return nil
	}
}

func (r *replica) start(port int) (*process, error) {
	out, err := os.OpenFile(r.spec.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening function log: %w", err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(r.spec.binary)
	cmd.Env = append(append([]string(nil), r.spec.env...), "PORT="+strconv.Itoa(port))
	cmd.Dir = r.spec.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", r.spec.binary, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitHealthy polls GET /_/health until it answers 200.
func (r *replica) waitHealthy(p *process, base *url.URL) error {
	health := base.String() + "/_/health"
	deadline := time.NewTimer(r.cfg.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("process exited before it was healthy: %v", p.err)
		case <-r.stop:
			return errors.New("stopped before it was healthy")
		case <-deadline.C:
			return fmt.Errorf("no 200 from %s within %s", health, r.cfg.StartTimeout)
		case <-tick.C:
			if res, err := healthClient.Get(health); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
	}
}

// terminate sends SIGTERM to the process group, then SIGKILL after the grace.
func (r *replica) terminate(p *process) {
	if p.hasExited() {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(r.cfg.StopGrace):
		r.log.Warn("replica ignored SIGTERM, killing it", "pid", pid, "grace", r.cfg.StopGrace)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
}

// reservedPorts are the fixed ports of the local runtime (Alertmanager's
// included); a function never gets one of them.
var reservedPorts = map[int]bool{8080: true, 8081: true, 8082: true, 8090: true, 9090: true, 9093: true, 9200: true}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !reservedPorts[port] {
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: only reserved ports were offered")
}
