package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// childSpec says how to run one component of the stack.
type childSpec struct {
	name   string
	path   string
	args   []string
	env    []string // over os.Environ()
	dir    string
	health string        // URL that answers below 500 once the child is up; "" for none
	grace  time.Duration // between SIGTERM and SIGKILL
	quiet  bool          // log to its file only, never to Config.Output
	// restarted runs after the child was started again and is healthy.
	restarted func(ctx context.Context) error
}

// child is a running component. It is started again, with backoff, when it
// dies, until stop.
type child struct {
	spec    childSpec
	log     *slog.Logger
	logFile string
	output  io.Writer // nil or the prefixed Config.Output

	mu          sync.Mutex // guards cmd, exited, supervising and closing stopped
	supervising bool
	cmd         *exec.Cmd
	exited      chan struct{} // of the current process
	stopped     chan struct{} // closed by stop
	done        chan struct{} // closed when supervision has ended
}

func newChild(spec childSpec, logDir string, out io.Writer, log *slog.Logger) *child {
	c := &child{
		spec:    spec,
		log:     log.With("component", spec.name),
		logFile: filepath.Join(logDir, spec.name+".log"),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if out != nil && !spec.quiet {
		c.output = newPrefixWriter(out, spec.name)
	}
	return c
}

// start runs the process once and waits until it is healthy.
func (c *child) start(ctx context.Context, timeout time.Duration) error {
	if err := c.exec(); err != nil {
		return err
	}
	if err := c.waitHealthy(ctx, timeout); err != nil {
		c.terminate()
		return fmt.Errorf("%s did not start: %w\n%s", c.spec.name, err, c.logTail())
	}
	c.mu.Lock()
	c.supervising = true
	c.mu.Unlock()
	go c.supervise()
	return nil
}

var errStopped = errors.New("stopped")

func (c *child) exec() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stopped:
		return errStopped
	default:
	}
	f, err := os.OpenFile(c.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening log of %s: %w", c.spec.name, err)
	}
	fmt.Fprintf(f, "--- %s started %s\n", c.spec.name, time.Now().Format(time.RFC3339))
	cmd := exec.Command(c.spec.path, c.spec.args...)
	cmd.Env = append(os.Environ(), c.spec.env...)
	cmd.Dir = c.spec.dir
	var w io.Writer = f
	if c.output != nil {
		w = io.MultiWriter(f, c.output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s (%s): %w", c.spec.name, c.spec.path, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		f.Close()
		c.log.Debug("process ended", "error", err)
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited
	return nil
}

func (c *child) current() (*exec.Cmd, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd, c.exited
}

// pid is the process id of the running process.
func (c *child) pid() int {
	cmd, exited := c.current()
	select {
	case <-exited:
		return 0
	default:
		return cmd.Process.Pid
	}
}

var healthClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

func (c *child) waitHealthy(ctx context.Context, timeout time.Duration) error {
	_, exited := c.current()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if c.spec.health == "" {
			// No health check: up if it still runs after a moment.
			select {
			case <-exited:
				return errors.New("exited at once")
			case <-time.After(300 * time.Millisecond):
				return nil
			}
		}
		if res, err := healthClient.Get(c.spec.health); err == nil {
			res.Body.Close()
			if res.StatusCode < 500 {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it answered " + c.spec.health)
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stopped:
			return errors.New("stopped")
		case <-deadline.C:
			return fmt.Errorf("no answer from %s within %s", c.spec.health, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// supervise starts the process again whenever it dies, until stop.
func (c *child) supervise() {
	defer close(c.done)
	backoff := time.Second
	for {
		_, exited := c.current()
		began := time.Now()
		select {
		case <-c.stopped:
			return
		case <-exited:
		}
		if time.Since(began) > time.Minute {
			backoff = time.Second
		}
		c.log.Error("component died, starting it again", "backoff", backoff, "log", c.logFile)
		select {
		case <-c.stopped:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		if err := c.exec(); err != nil {
			if errors.Is(err, errStopped) {
				return
			}
			c.log.Error("restarting component", "error", err)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.stopped:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := c.waitHealthy(ctx, 2*time.Minute); err != nil {
			c.log.Error("restarted component is not healthy", "error", err)
		} else if c.spec.restarted != nil {
			if err := c.spec.restarted(ctx); err != nil {
				c.log.Error("after restart", "error", err)
			}
		}
		cancel()
	}
}

// stop ends supervision and the process: SIGTERM to its process group, then
// SIGKILL after the grace.
func (c *child) stop() {
	c.mu.Lock()
	select {
	case <-c.stopped:
	default:
		close(c.stopped)
	}
	supervising := c.supervising
	c.mu.Unlock()
	c.terminate()
	if supervising {
		<-c.done
	}
}

func (c *child) terminate() {
	cmd, exited := c.current()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	grace := c.spec.grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	select {
	case <-exited:
	case <-time.After(grace):
		c.log.Warn("component ignored SIGTERM, killing it", "pid", pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
}

// logTail is the end of the child's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Sprintf("end of %s:\n%s", c.logFile, bytes.TrimSpace(b))
}

// prefixWriter writes whole lines to a shared writer, each prefixed.
type prefixWriter struct {
	out    io.Writer
	prefix []byte
	mu     sync.Mutex
	buf    []byte
}

// outputMu serialises lines from all children on the shared output.
var outputMu sync.Mutex

func newPrefixWriter(out io.Writer, name string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte(fmt.Sprintf("%-10s| ", name))}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		outputMu.Lock()
		_, _ = w.out.Write(append(append([]byte(nil), w.prefix...), w.buf[:i+1]...))
		outputMu.Unlock()
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a very long line: flush it as is
		outputMu.Lock()
		_, _ = w.out.Write(append(append(append([]byte(nil), w.prefix...), w.buf...), '\n'))
		outputMu.Unlock()
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
