package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"optio.dev/local/supervisor"
	"optio.dev/optio/index"
	"optio.dev/optio/run"
)

// bench is one running stack and the clients the measurements use.
type bench struct {
	cfg      Config
	log      *slog.Logger
	stack    *supervisor.Stack
	state    string
	env      map[string]string
	rdb      *redis.Client
	store    *run.Store
	index    *index.Index
	http     *http.Client
	comps    components
	prefetch int
}

// startStack starts a stack at prefetch; noop deploys optio-noop as the
// process function.
func startStack(ctx context.Context, cfg Config, log *slog.Logger, prefetch int, noop bool) (*bench, error) {
	kind := "product"
	if noop {
		kind = "noop"
	}
	tag := fmt.Sprintf("%s-%s-p%d", cfg.ID, kind, prefetch)
	state, err := os.MkdirTemp("", "optio-bench-")
	if err != nil {
		return nil, err
	}
	stackFile := filepath.Join(cfg.Root, "stack.yml")
	if noop {
		b, err := os.ReadFile(stackFile)
		if err != nil {
			return nil, fmt.Errorf("reading stack file: %w", err)
		}
		text := strings.ReplaceAll(string(b), "/optio-process:", "/optio-noop:")
		stackFile = filepath.Join(state, "stack-noop.yml")
		if err := os.WriteFile(stackFile, []byte(text), 0o644); err != nil {
			return nil, err
		}
	}
	env := map[string]string{
		"OPTIO_PREFIX":       "bench:" + tag + ":",
		"OPTIO_QUEUE":        "bench." + tag + ".jobs",
		"OPTIO_INDEX":        "bench_" + strings.ReplaceAll(tag, "-", "_"),
		"CONNECTOR_PREFETCH": strconv.Itoa(prefetch),
	}
	logFile, err := os.Create(filepath.Join(state, "stack.log"))
	if err != nil {
		return nil, err
	}
	log.Info("starting stack (waits for the gateway lock)", "kind", kind, "prefetch", prefetch, "state", state)
	s, err := supervisor.Start(ctx, supervisor.Config{
		BinDir:         cfg.BinDir,
		StateDir:       state,
		StackFile:      stackFile,
		ServicesScript: "none",
		Env:            env,
		LockWait:       cfg.LockWait,
		Output:         logFile,
		Logger:         log.With("component", "supervisor"),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the %s stack at prefetch %d (logs in %s): %w", kind, prefetch, state, err)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	ix, err := index.New(index.Config{URL: supervisor.ESStoreURL, Index: env["OPTIO_INDEX"]})
	if err != nil {
		s.Stop()
		return nil, err
	}
	roots := map[int]string{}
	for _, name := range []string{"esstore", "prometheus", "provider", "gateway", "connector", "relay"} {
		if pid := s.PID(name); pid != 0 {
			roots[pid] = name
		}
	}
	return &bench{cfg: cfg, log: log, stack: s, state: state, env: env, rdb: rdb,
		store: run.NewStore(rdb, env["OPTIO_PREFIX"], time.Hour), index: ix,
		http: &http.Client{Timeout: time.Minute}, comps: components{roots: roots}, prefetch: prefetch}, nil
}

func (b *bench) close() {
	b.stack.Stop()
	b.cleanRedis()
	b.rdb.Close()
	os.RemoveAll(b.state)
}

// cleanRedis removes the keys of this stack's prefix.
func (b *bench) cleanRedis() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := b.rdb.Scan(ctx, 0, b.env["OPTIO_PREFIX"]+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		b.rdb.Unlink(ctx, keys[:n]...)
		keys = keys[n:]
	}
}

// call invokes a function through the gateway.
func (b *bench) call(ctx context.Context, method, fn string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, supervisor.GatewayURL+"/function/"+fn, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := b.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s /function/%s: %w", method, fn, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s /function/%s answered %d %q: %w", method, fn, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode, nil
}

// start starts a run through the gateway.
func (b *bench) start(ctx context.Context, x, y int64) (run.Run, error) {
	var r run.Run
	code, err := b.call(ctx, http.MethodPost, "run", fmt.Appendf(nil, `{"x": %d, "y": %d}`, x, y), &r)
	if err == nil && code != http.StatusCreated {
		err = fmt.Errorf("run x=%d y=%d answered %d: %+v", x, y, code, r)
	}
	return r, err
}

func (b *bench) stop(ctx context.Context) (run.Run, error) {
	var r run.Run
	code, err := b.call(ctx, http.MethodPost, "stop", nil, &r)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("stop answered %d", code)
	}
	return r, err
}

// waitRun polls the run in Redis every `every` until cond holds.
func waitRun(ctx context.Context, store *run.Store, id string, timeout, every time.Duration, cond func(run.Run) bool) (run.Run, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := store.Get(ctx, id)
		if err == nil && cond(r) {
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("run %s: condition not reached within %v (last %+v, err %v)", id, timeout, r, err)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(every):
		}
	}
}

// settle waits until every released job of the run is accounted for, so the
// next measurement does not share the machine with leftovers.
func (b *bench) settle(ctx context.Context, id string) {
	_, err := waitRun(ctx, b.store, id, 3*time.Minute, 100*time.Millisecond, func(r run.Run) bool {
		return r.State != run.Running && r.Done >= r.Enqueued
	})
	if err != nil {
		b.log.Warn("run did not settle", "run_id", id, "err", err)
	}
}
