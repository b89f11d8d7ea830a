package provider

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"
)

// Namespace is the one namespace the local provider reports.
const Namespace = "openfaas-fn"

// Labels the provider honours when it sets a function's replicas.
const (
	MinScaleLabel = "com.openfaas.scale.min"
	MaxScaleLabel = "com.openfaas.scale.max"
)

// ErrNotFound is returned for a function or secret that does not exist.
var ErrNotFound = errors.New("not found")

// ErrStopping is returned once the runtime is closing.
var ErrStopping = errors.New("provider is stopping")

// ErrExists is returned when creating a secret that exists.
var ErrExists = errors.New("already exists")

// BadRequestError is a request the provider cannot carry out as asked.
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Msg: fmt.Sprintf(format, args...)}
}

// nameRE is what function and secret names must look like (a DNS label, as
// on Kubernetes); names become file names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// imageRE is the last path segment of an image without tag or digest; it
// becomes a file name under BinDir.
var imageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Runtime runs deployed functions as local processes.
type Runtime struct {
	cfg Config
	log *slog.Logger

	mu        sync.RWMutex
	functions map[string]*function
	closed    bool
	closing   chan struct{} // closed by Close: drains stop waiting
	drains    sync.WaitGroup
}

// function is one deployment and its replicas.
type function struct {
	mu        sync.Mutex // serialises changes of dep, spec and replicas
	dep       types.FunctionDeployment
	spec      *spec
	createdAt time.Time
	closed    bool

	replicas atomic.Pointer[[]*replica] // read without mu by calls
	next     atomic.Uint64              // round robin
}

func (f *function) current() []*replica {
	if p := f.replicas.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *function) set(rs []*replica) { f.replicas.Store(&rs) }

// NewRuntime checks cfg and prepares the state directory.
func NewRuntime(cfg Config) (*Runtime, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{"secrets", "functions", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating state directory: %w", err)
		}
	}
	return &Runtime{
		cfg:       cfg,
		log:       cfg.Logger,
		functions: map[string]*function{},
		closing:   make(chan struct{}),
	}, nil
}

// Deploy creates a function, or replaces it when it exists.
func (rt *Runtime) Deploy(dep types.FunctionDeployment) error { return rt.deploy(dep, false) }

// Update replaces an existing function; ErrNotFound when there is none.
func (rt *Runtime) Update(dep types.FunctionDeployment) error { return rt.deploy(dep, true) }

func (rt *Runtime) deploy(dep types.FunctionDeployment, mustExist bool) error {
	s, err := rt.prepare(dep)
	if err != nil {
		return err
	}
	minR, maxR, err := scaleBounds(dep.Labels, rt.cfg.MaxReplicas)
	if err != nil {
		return err
	}

	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return ErrStopping
	}
	f, ok := rt.functions[dep.Service]
	if !ok {
		if mustExist {
			rt.mu.Unlock()
			return fmt.Errorf("function %q: %w", dep.Service, ErrNotFound)
		}
		f = &function{createdAt: time.Now().UTC()}
		rt.functions[dep.Service] = f
	}
	f.mu.Lock()
	rt.mu.Unlock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrStopping
	}

	n := max(len(f.current()), minR)
	if !ok {
		n = max(minR, 1)
	}
	n = min(n, maxR)
	old := f.current()
	next := make([]*replica, n)
	for i := range next {
		next[i] = startReplica(s, &rt.cfg)
	}
	f.dep, f.spec = dep, s
	f.set(next)
	rt.drain(old)
	rt.log.Info("function deployed", "function", dep.Service, "image", dep.Image, "replicas", n)
	return nil
}

// prepare checks a deployment and builds what its replicas run.
func (rt *Runtime) prepare(dep types.FunctionDeployment) (*spec, error) {
	if !nameRE.MatchString(dep.Service) {
		return nil, badRequest("service %q is not a valid function name (lower-case letters, digits and '-', at most 63)", dep.Service)
	}
	if dep.Namespace != "" && dep.Namespace != Namespace {
		return nil, badRequest("namespace %q is not supported: the local provider has only %q", dep.Namespace, Namespace)
	}
	bin, err := rt.binaryFor(dep.Image)
	if err != nil {
		return nil, err
	}
	if _, _, err := scaleBounds(dep.Labels, rt.cfg.MaxReplicas); err != nil {
		return nil, err
	}
	dir := filepath.Join(rt.cfg.StateDir, "functions", dep.Service)
	secrets := filepath.Join(dir, "secrets")
	if err := rt.writeFunctionSecrets(secrets, dep.Secrets); err != nil {
		return nil, err
	}
	env := baseEnv()
	for _, k := range slices.Sorted(maps.Keys(dep.EnvVars)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, badRequest("envVars: %q is not a valid variable name", k)
		}
		env = append(env, k+"="+dep.EnvVars[k])
	}
	if dep.EnvProcess != "" {
		env = append(env, "fprocess="+dep.EnvProcess)
	}
	env = append(env, "OPTIO_SECRETS_DIR="+secrets)
	return &spec{
		function: dep.Service,
		binary:   bin,
		env:      env,
		dir:      dir,
		logFile:  filepath.Join(rt.cfg.StateDir, "logs", dep.Service+".log"),
	}, nil
}

// binaryFor maps an image such as ghcr.io/optio/optio-process:dev to
// BinDir/optio-process.
func (rt *Runtime) binaryFor(image string) (string, error) {
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.Index(last, ":"); i >= 0 {
		last = last[:i]
	}
	if !imageRE.MatchString(last) {
		return "", badRequest("unknown image %q: cannot name a binary after it", image)
	}
	bin := filepath.Join(rt.cfg.BinDir, last)
	st, err := os.Stat(bin)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", badRequest("unknown image %q: the local provider runs %s, which is not an executable file (run `make build`)", image, bin)
	}
	return bin, nil
}

// baseEnv is the part of the provider's environment a function inherits.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// scaleBounds reads the min and max scale labels; min defaults to 0 and max
// to limit.
func scaleBounds(labels *map[string]string, limit int) (lo, hi int, err error) {
	lo, hi = 0, limit
	if labels == nil {
		return lo, hi, nil
	}
	read := func(key string, dst *int) error {
		v, ok := (*labels)[key]
		if !ok {
			return nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return badRequest("label %s=%q is not a whole number", key, v)
		}
		*dst = n
		return nil
	}
	if err := read(MinScaleLabel, &lo); err != nil {
		return 0, 0, err
	}
	if err := read(MaxScaleLabel, &hi); err != nil {
		return 0, 0, err
	}
	if hi < 1 {
		return 0, 0, badRequest("label %s=%d must be at least 1", MaxScaleLabel, hi)
	}
	hi = min(hi, limit)
	lo = min(lo, hi)
	return lo, hi, nil
}

// Scale sets the replicas of a function, within its scale labels.
func (rt *Runtime) Scale(name string, replicas uint64) error {
	f, err := rt.get(name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrStopping
	}
	lo, hi, err := scaleBounds(f.dep.Labels, rt.cfg.MaxReplicas)
	if err != nil {
		return err
	}
	n := int(min(replicas, uint64(hi)))
	n = max(n, lo)
	cur := f.current()
	switch {
	case n > len(cur):
		next := slices.Clone(cur)
		for len(next) < n {
			next = append(next, startReplica(f.spec, &rt.cfg))
		}
		f.set(next)
	case n < len(cur):
		// Keep the ready replicas; remove the others first, then the newest.
		keep := slices.Clone(cur)
		sort.SliceStable(keep, func(i, j int) bool {
			return keep[i].ready.Load() != nil && keep[j].ready.Load() == nil
		})
		f.set(keep[:n])
		rt.drain(keep[n:])
	}
	if n != len(cur) {
		rt.log.Info("function scaled", "function", name, "from", len(cur), "to", n)
	}
	return nil
}

// Delete removes a function; its replicas drain and stop in the background.
func (rt *Runtime) Delete(name string) error {
	rt.mu.Lock()
	f, ok := rt.functions[name]
	delete(rt.functions, name)
	rt.mu.Unlock()
	if !ok {
		return fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.current()
	f.set(nil)
	f.closed = true
	rt.drain(old)
	rt.log.Info("function deleted", "function", name)
	return nil
}

// get finds a function by name; "NAME.openfaas-fn", the form the gateway and
// connector-sdk use with a namespace, names the same function.
func (rt *Runtime) get(name string) (*function, error) {
	name = strings.TrimSuffix(name, "."+Namespace)
	rt.mu.RLock()
	f, ok := rt.functions[name]
	rt.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	return f, nil
}

// drain stops replicas in the background once their calls have finished.
func (rt *Runtime) drain(rs []*replica) {
	if len(rs) == 0 {
		return
	}
	for _, r := range rs {
		r.removed.Store(true)
	}
	rt.mu.Lock()
	closed := rt.closed
	if !closed {
		rt.drains.Add(1)
	}
	rt.mu.Unlock()
	if closed { // Close is already waiting: stop them now
		stopAll(rs, 0, rt.closing)
		return
	}
	go func() {
		defer rt.drains.Done()
		stopAll(rs, rt.cfg.DrainTimeout, rt.closing)
	}()
}

func stopAll(rs []*replica, timeout time.Duration, abort <-chan struct{}) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.drain(timeout, abort)
		}()
	}
	wg.Wait()
}

// Close stops every process the runtime started (SIGTERM, then SIGKILL after
// StopGrace) and returns when they are gone.
func (rt *Runtime) Close() {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		rt.drains.Wait()
		return
	}
	rt.closed = true
	close(rt.closing)
	fns := slices.Collect(maps.Values(rt.functions))
	rt.mu.Unlock()

	var all []*replica
	for _, f := range fns {
		f.mu.Lock()
		all = append(all, f.current()...)
		f.set(nil)
		f.closed = true
		f.mu.Unlock()
	}
	stopAll(all, 0, rt.closing)
	rt.drains.Wait()
}

// Status describes one function as faas-provider's FunctionStatus.
func (rt *Runtime) Status(name string) (types.FunctionStatus, error) {
	f, err := rt.get(name)
	if err != nil {
		return types.FunctionStatus{}, err
	}
	return f.status(), nil
}

// List describes every function, sorted by name.
func (rt *Runtime) List() []types.FunctionStatus {
	rt.mu.RLock()
	fns := slices.Collect(maps.Values(rt.functions))
	rt.mu.RUnlock()
	out := make([]types.FunctionStatus, 0, len(fns))
	for _, f := range fns {
		out = append(out, f.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *function) status() types.FunctionStatus {
	f.mu.Lock()
	d := f.dep
	created := f.createdAt
	f.mu.Unlock()
	rs := f.current()
	avail := 0
	for _, r := range rs {
		if r.ready.Load() != nil && !r.removed.Load() {
			avail++
		}
	}
	return types.FunctionStatus{
		Name:                   d.Service,
		Image:                  d.Image,
		Namespace:              Namespace,
		EnvProcess:             d.EnvProcess,
		EnvVars:                d.EnvVars,
		Constraints:            d.Constraints,
		Secrets:                d.Secrets,
		Labels:                 d.Labels,
		Annotations:            d.Annotations,
		Limits:                 d.Limits,
		Requests:               d.Requests,
		ReadOnlyRootFilesystem: d.ReadOnlyRootFilesystem,
		Replicas:               uint64(len(rs)),
		AvailableReplicas:      uint64(avail),
		CreatedAt:              created,
	}
}

// ReplicaInfo describes one replica, for tests and troubleshooting.
type ReplicaInfo struct {
	PID      int    `json:"pid"`
	URL      string `json:"url,omitempty"`
	Ready    bool   `json:"ready"`
	InFlight int64  `json:"inFlight"`
	// Served counts the calls the replica was given since it was started.
	Served   int64 `json:"served"`
	Restarts int64 `json:"restarts"`
}

// Replicas describes the replicas of a function.
func (rt *Runtime) Replicas(name string) ([]ReplicaInfo, error) {
	f, err := rt.get(name)
	if err != nil {
		return nil, err
	}
	rs := f.current()
	out := make([]ReplicaInfo, 0, len(rs))
	for _, r := range rs {
		info := ReplicaInfo{PID: int(r.pid.Load()), InFlight: r.inflight.Load(), Served: r.served.Load(), Restarts: r.restarts.Load()}
		if u := r.ready.Load(); u != nil {
			info.Ready, info.URL = true, u.String()
		}
		out = append(out, info)
	}
	return out, nil
}

// pick chooses the next ready replica of a function, round robin, waiting
// up to ReadyWait for one. The caller must release it.
func (rt *Runtime) pick(done <-chan struct{}, name string) (*replica, string, error) {
	f, err := rt.get(name)
	if err != nil {
		return nil, "", err
	}
	var wait *time.Timer
	for {
		rs := f.current()
		if n := uint64(len(rs)); n > 0 {
			start := f.next.Add(1)
			for i := range n {
				r := rs[(start+i)%n]
				if u, ok := r.acquire(); ok {
					return r, u.Host, nil
				}
			}
		}
		if wait == nil {
			wait = time.NewTimer(rt.cfg.ReadyWait)
			defer wait.Stop()
		}
		select {
		case <-done:
			return nil, "", errors.New("call abandoned while waiting for a replica")
		case <-rt.closing:
			return nil, "", ErrStopping
		case <-wait.C:
			return nil, "", fmt.Errorf("function %q has no ready replica (waited %s): %w", name, rt.cfg.ReadyWait, errNoReplica)
		case <-time.After(10 * time.Millisecond):
		}
		if f, err = rt.get(name); err != nil {
			return nil, "", err
		}
	}
}

var errNoReplica = errors.New("no ready replica")
