// Package supervisor runs the whole product on one machine, for `make up`
// and the end-to-end tests: it makes sure Redis and RabbitMQ run, starts the
// esstore (unless ES_URL is set), Prometheus, the local provider, the
// OpenFaaS gateway and Alertmanager (which scales functions by their
// invocation rate through the gateway: see Alerting), deploys the functions
// of stack.yml through the gateway as faas-cli deploy would, then starts the
// connector and the relay. Every component is a child process, started again
// if it dies, and Stop ends them all in reverse order.
package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Fixed addresses of the local runtime.
const (
	GatewayURL    = "http://127.0.0.1:8080"
	ProviderURL   = "http://127.0.0.1:8081"
	DashboardURL  = "http://127.0.0.1:8090"
	PrometheusURL = "http://127.0.0.1:9090"
	ESStoreURL    = "http://127.0.0.1:9200"
)

// Stack is a running product.
type Stack struct {
	cfg      Config
	creds    Credentials // the gateway's basic auth
	unlock   func()
	children []*child // in start order
	deps     []types.FunctionDeployment
	client   *http.Client

	stopOnce sync.Once
}

// GatewayURL is where the functions are called.
func (s *Stack) GatewayURL() string { return GatewayURL }

// Credentials are the gateway's basic auth credentials for /system, kept
// in StateDir/gateway.
func (s *Stack) Credentials() Credentials { return s.creds }

// PID is the process id of a component (esstore, prometheus, provider,
// gateway, connector, relay), or 0 when it does not run.
func (s *Stack) PID(component string) int {
	for _, c := range s.children {
		if c.spec.name == component {
			return c.pid()
		}
	}
	return 0
}

// Start brings the product up. ctx bounds the start only; the stack runs
// until Stop. When Start fails it has stopped whatever it started.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.LockWait)
	unlock, err := LockGateway(lctx)
	cancel()
	if err != nil {
		return nil, err
	}
	s := &Stack{cfg: cfg, unlock: unlock, client: &http.Client{Timeout: 30 * time.Second}}
	if err := s.start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	cfg := &s.cfg
	ports := []int{8080, 8081, 8082, 9090, 9093}
	if cfg.ESURL == "" {
		ports = append(ports, 9200)
	}
	if err := checkPorts(ports); err != nil {
		return err
	}
	deps, err := readStack(cfg.StackFile, cfg.lookup(os.LookupEnv), cfg.Env)
	if err != nil {
		return err
	}
	if s.creds, err = gatewayCredentials(cfg.StateDir, cfg.GatewayPassword); err != nil {
		return err
	}
	// Functions that call the gateway's /system API (status counts the
	// replicas of process) get the credentials as the secrets
	// basic-auth-user and basic-auth-password, as on a cluster
	// (ensureSecrets), not in their environment, which the function
	// listing shows.
	s.deps = deps
	for _, d := range []string{"logs", "prometheus", "esstore"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o755); err != nil {
			return fmt.Errorf("creating state directory: %w", err)
		}
	}
	if err := s.runServicesScript(ctx); err != nil {
		return err
	}

	if cfg.ESURL == "" {
		if err := s.launch(ctx, childSpec{
			name:   "esstore",
			path:   s.bin("optio-esstore"),
			env:    []string{"ESSTORE_ADDR=127.0.0.1:9200", "ESSTORE_DATA=" + filepath.Join(cfg.StateDir, "esstore")},
			health: ESStoreURL + "/",
		}); err != nil {
			return err
		}
	}
	promCfg, err := writePrometheusConfig(filepath.Join(cfg.StateDir, "prometheus"), cfg.Alerting)
	if err != nil {
		return err
	}
	if err := s.launch(ctx, childSpec{
		name: "prometheus",
		path: cfg.PrometheusBin,
		args: []string{
			"--config.file=" + promCfg,
			"--storage.tsdb.path=" + filepath.Join(cfg.StateDir, "prometheus", "data"),
			"--storage.tsdb.retention.time=1d",
			"--web.listen-address=127.0.0.1:9090",
		},
		health: PrometheusURL + "/-/ready",
		quiet:  true,
	}); err != nil {
		return err
	}
	if err := s.launch(ctx, childSpec{
		name: "provider",
		path: s.bin("optio-provider"),
		env: []string{
			"OPTIO_PROVIDER_ADDR=127.0.0.1:8081",
			"OPTIO_BIN_DIR=" + cfg.BinDir,
			"OPTIO_STATE_DIR=" + filepath.Join(cfg.StateDir, "provider"),
		},
		health:    ProviderURL + "/healthz",
		grace:     20 * time.Second, // the provider gives its functions 10s
		restarted: s.deployAll,
	}); err != nil {
		return err
	}
	gatewayEnv := []string{
		"functions_provider_url=" + ProviderURL + "/",
		"faas_prometheus_host=127.0.0.1",
		"faas_prometheus_port=9090",
		"read_timeout=130s",
		"write_timeout=130s",
		"upstream_timeout=130s",
		"max_idle_conns_per_host=1024",
		"function_namespace=openfaas-fn",
		"scale_from_zero=false",
		// /system needs basic auth, as OpenFaaS sets it up by default.
		"basic_auth=true",
		"secret_mount_path=" + s.creds.Dir,
	}
	if err := s.launch(ctx, childSpec{
		name:   "gateway",
		path:   s.bin("gateway"),
		dir:    cfg.StateDir,
		env:    gatewayEnv,
		health: GatewayURL + "/healthz",
		quiet:  true,
	}); err != nil {
		return err
	}
	if err := s.launchAlertmanager(ctx, gatewayEnv); err != nil {
		return err
	}
	if err := s.deployAll(ctx); err != nil {
		return err
	}
	for _, name := range []string{"connector", "relay"} {
		path := s.bin("optio-" + name)
		if _, err := os.Stat(path); err != nil {
			cfg.Logger.Warn("not starting "+name+": its binary is missing (run make build)", "path", path)
			continue
		}
		if err := s.launch(ctx, childSpec{name: name, path: path, env: s.serviceEnv()}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) bin(name string) string { return filepath.Join(s.cfg.BinDir, name) }

// serviceEnv is the environment of the connector and the relay.
func (s *Stack) serviceEnv() []string {
	env := []string{"OPTIO_GATEWAY_URL=" + GatewayURL,
		"OPENFAAS_USER=" + s.creds.User, "OPENFAAS_PASSWORD=" + s.creds.Password}
	if s.cfg.ESURL == "" {
		env = append(env, "ES_URL="+ESStoreURL)
	}
	for k, v := range s.cfg.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// launch starts a component and adds it to the stack.
func (s *Stack) launch(ctx context.Context, spec childSpec) error {
	if _, err := os.Stat(spec.path); err != nil {
		return fmt.Errorf("cannot start %s: %s is missing (run make build): %w", spec.name, spec.path, err)
	}
	c := newChild(spec, filepath.Join(s.cfg.StateDir, "logs"), s.cfg.Output, s.cfg.Logger)
	s.children = append(s.children, c)
	if err := c.start(ctx, s.cfg.StartTimeout); err != nil {
		return err
	}
	s.cfg.Logger.Info("started", "component", spec.name, "pid", c.pid())
	return nil
}

// Stop ends every component in reverse order and waits until all are gone.
func (s *Stack) Stop() {
	s.stopOnce.Do(func() {
		for i := len(s.children) - 1; i >= 0; i-- {
			s.children[i].stop()
		}
		s.cfg.Logger.Info("stack stopped")
		if s.unlock != nil {
			s.unlock()
		}
	})
}

// checkPorts fails when a port the stack needs is taken.
func checkPorts(ports []int) error {
	for _, p := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("port %d is already taken: stop `make up` first (or whatever listens on %s)", p, addr)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			return fmt.Errorf("port %d is already taken: stop `make up` first (%w)", p, err)
		}
		ln.Close()
	}
	return nil
}

func (s *Stack) runServicesScript(ctx context.Context) error {
	script := s.cfg.ServicesScript
	if script == "" || script == "none" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "bash", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if s.cfg.Output != nil {
		w := newPrefixWriter(s.cfg.Output, "services")
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, w), io.MultiWriter(&out, w)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("making sure Redis and RabbitMQ run (%s): %w\n%s", script, err, out.String())
	}
	return nil
}

// deployAll deploys every function of the stack through the gateway and
// waits until each has a ready replica.
func (s *Stack) deployAll(ctx context.Context) error {
	if err := s.ensureSecrets(ctx); err != nil {
		return err
	}
	for _, dep := range s.deps {
		if err := s.deploy(ctx, dep); err != nil {
			return err
		}
	}
	for _, dep := range s.deps {
		if err := s.waitAvailable(ctx, dep.Service); err != nil {
			return err
		}
	}
	s.cfg.Logger.Info("functions deployed", "count", len(s.deps))
	return nil
}

// deploy sends a deployment as faas-cli deploy does: PUT to update, then POST
// when the function does not exist yet.
func (s *Stack) deploy(ctx context.Context, dep types.FunctionDeployment) error {
	code, body, err := s.api(ctx, http.MethodPut, "/system/functions", dep)
	if err == nil && code == http.StatusNotFound {
		code, body, err = s.api(ctx, http.MethodPost, "/system/functions", dep)
	}
	if err != nil {
		return fmt.Errorf("deploying %s: %w", dep.Service, err)
	}
	if code/100 != 2 {
		return fmt.Errorf("deploying %s: gateway answered %d: %s", dep.Service, code, strings.TrimSpace(body))
	}
	return nil
}

// ensureSecrets creates the secrets the functions name that do not exist:
// basic-auth-user and basic-auth-password from the gateway's credentials,
// the others from the variable named after each (es-password: ES_PASSWORD),
// or empty.
func (s *Stack) ensureSecrets(ctx context.Context) error {
	want := map[string]bool{}
	for _, d := range s.deps {
		for _, n := range d.Secrets {
			want[n] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	code, body, err := s.api(ctx, http.MethodGet, "/system/secrets", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("listing secrets: %d %s %v", code, body, err)
	}
	var have []types.Secret
	if err := json.Unmarshal([]byte(body), &have); err != nil {
		return fmt.Errorf("listing secrets: %w", err)
	}
	// The gateway's credentials are written every start (they may have
	// changed: OPTIO_GATEWAY_PASSWORD); other existing secrets are kept.
	own := map[string]string{"basic-auth-user": s.creds.User, "basic-auth-password": s.creds.Password}
	exists := map[string]bool{}
	for _, h := range have {
		exists[h.Name] = true
		if _, ok := own[h.Name]; !ok {
			delete(want, h.Name)
		}
	}
	lookup := s.cfg.lookup(os.LookupEnv)
	for name := range want {
		value, ok := own[name]
		if !ok {
			value, _ = lookup(strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
		}
		method := http.MethodPost
		if exists[name] {
			method = http.MethodPut
		}
		code, body, err := s.api(ctx, method, "/system/secrets", types.Secret{Name: name, Value: value})
		if err != nil || code/100 != 2 {
			return fmt.Errorf("writing secret %s: %d %s %v", name, code, body, err)
		}
		s.cfg.Logger.Info("wrote secret", "secret", name, "updated", exists[name], "empty", value == "")
	}
	return nil
}

func (s *Stack) waitAvailable(ctx context.Context, name string) error {
	deadline := time.Now().Add(s.cfg.StartTimeout)
	for {
		code, body, err := s.api(ctx, http.MethodGet, "/system/function/"+name, nil)
		var st types.FunctionStatus
		if err == nil && code == http.StatusOK && json.Unmarshal([]byte(body), &st) == nil &&
			(st.AvailableReplicas >= 1 || st.Replicas == 0) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("function %s has no ready replica after %s (see %s): %d %s %v", name, s.cfg.StartTimeout,
				filepath.Join(s.cfg.StateDir, "provider", "logs", name+".log"), code, strings.TrimSpace(body), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// api calls the gateway's system API.
func (s *Stack) api(ctx context.Context, method, path string, body any) (int, string, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, GatewayURL+path, r)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.creds.User, s.creds.Password)
	res, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, string(b), nil
}
