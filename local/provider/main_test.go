package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/openfaas/templates-sdk/go-http"
	"optio.dev/local/watchdog"
)

// The test binary doubles as a function: the provider under test runs
// binDir/optio-testfn, a link to this binary, with OPTIO_TEST_FUNCTION=1.
var binDir string

const testImage = "ghcr.io/optio/optio-testfn:dev"

func TestMain(m *testing.M) {
	if os.Getenv("OPTIO_TEST_FUNCTION") == "1" {
		os.Exit(serveTestFunction())
	}
	dir, err := os.MkdirTemp("", "optio-provider-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	self, err := os.Executable()
	if err == nil {
		err = os.Symlink(self, filepath.Join(dir, "optio-testfn"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "linking the test function:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testAnswer is what the test function answers.
type testAnswer struct {
	PID    int    `json:"pid"`
	Env    string `json:"env,omitempty"`
	Secret string `json:"secret,omitempty"`
	Method string `json:"method"`
	Query  string `json:"query"`
}

// serveTestFunction is the test function: ?env=NAME echoes a variable,
// ?secret=NAME a secret file, ?wait=PATH blocks until PATH exists.
func serveTestFunction() int {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if os.Getenv("OPTIO_TEST_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		sigs = sigs[:1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	handle := func(req handler.Request) (handler.Response, error) {
		q := parseQuery(req.QueryString)
		if p := q["wait"]; p != "" {
			for {
				if _, err := os.Stat(p); err == nil {
					break
				}
				select {
				case <-req.Context().Done():
					return handler.Response{}, req.Context().Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
		a := testAnswer{PID: os.Getpid(), Method: req.Method, Query: req.QueryString}
		if k := q["env"]; k != "" {
			a.Env = os.Getenv(k)
		}
		if k := q["secret"]; k != "" {
			b, err := os.ReadFile(filepath.Join(os.Getenv("OPTIO_SECRETS_DIR"), k))
			if err != nil {
				return handler.Response{}, err
			}
			a.Secret = string(b)
		}
		body, _ := json.Marshal(a)
		return handler.Response{Body: body, Header: http.Header{"Content-Type": {"application/json"}}}, nil
	}
	if err := watchdog.Serve(ctx, handle); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func parseQuery(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// harness is a runtime behind an httptest server.
type harness struct {
	t   *testing.T
	rt  *Runtime
	srv *httptest.Server
}

func testConfig(t *testing.T) Config {
	return Config{
		Addr:                "127.0.0.1:0",
		BinDir:              binDir,
		StateDir:            t.TempDir(),
		StartTimeout:        30 * time.Second,
		StopGrace:           5 * time.Second,
		DrainTimeout:        time.Minute,
		ReadyWait:           5 * time.Second,
		MaxReplicas:         10,
		ReadTimeout:         time.Minute,
		WriteTimeout:        time.Minute,
		MaxIdleConnsPerHost: 64,
		RestartBackoff:      50 * time.Millisecond,
		Logger:              slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	rt, err := NewRuntime(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Router(Handlers(rt), rt))
	t.Cleanup(func() {
		srv.Close()
		rt.Close()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(rt.cfg.StateDir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
	})
	return &harness{t: t, rt: rt, srv: srv}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// do sends a JSON request and returns status and body.
func (h *harness) do(method, path string, body any) (int, string) {
	h.t.Helper()
	return doJSON(h.t, h.srv.URL, method, path, body)
}

func doJSON(t *testing.T, base, method, path string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (h *harness) deploy(dep types.FunctionDeployment) {
	h.t.Helper()
	if code, body := h.do(http.MethodPost, "/system/functions", dep); code != http.StatusAccepted {
		h.t.Fatalf("deploy %s: %d %s", dep.Service, code, body)
	}
}

func testDeployment(name string, labels map[string]string) types.FunctionDeployment {
	return types.FunctionDeployment{
		Service: name,
		Image:   testImage,
		EnvVars: map[string]string{"OPTIO_TEST_FUNCTION": "1"},
		Labels:  &labels,
	}
}

// call invokes a function through the provider and decodes its answer.
func (h *harness) call(name, query string) (int, testAnswer) {
	h.t.Helper()
	code, body := h.do(http.MethodGet, "/function/"+name+"?"+query, nil)
	var a testAnswer
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			h.t.Fatalf("answer of %s: %v: %s", name, err, body)
		}
	}
	return code, a
}

func (h *harness) replicas(name string) []ReplicaInfo {
	h.t.Helper()
	code, body := h.do(http.MethodGet, "/local/replicas/"+name, nil)
	if code != http.StatusOK {
		h.t.Fatalf("replicas of %s: %d %s", name, code, body)
	}
	var rs []ReplicaInfo
	if err := json.Unmarshal([]byte(body), &rs); err != nil {
		h.t.Fatal(err)
	}
	return rs
}

// waitReady waits until the function has n replicas, all ready.
func (h *harness) waitReady(name string, n int) []ReplicaInfo {
	h.t.Helper()
	var rs []ReplicaInfo
	eventually(h.t, 60*time.Second, func() error {
		rs = h.replicas(name)
		ready := 0
		for _, r := range rs {
			if r.Ready {
				ready++
			}
		}
		if len(rs) != n || ready != n {
			return fmt.Errorf("%s: want %d ready replicas, have %d of %d", name, n, ready, len(rs))
		}
		return nil
	})
	return rs
}

// eventually retries check until it passes or the time is up.
func eventually(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		for _, p := range pids {
			if alive(p) {
				return fmt.Errorf("process %d still runs", p)
			}
		}
		return nil
	})
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
