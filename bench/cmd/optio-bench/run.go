package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"optio.dev/optio/run"
)

// Results is what latest.json holds.
type Results struct {
	Date     time.Time          `json:"date"`
	Machine  machine            `json:"machine"`
	Settings map[string]any     `json:"settings"`
	Prefetch map[string]*figure `json:"prefetch"`
	// Notes say how the figures were taken, where that matters.
	Notes   []string `json:"notes"`
	Seconds float64  `json:"seconds"`
}

// figure holds every figure at one prefetch.
type figure struct {
	Prefetch       int                `json:"prefetch"`
	E2E            float64            `json:"e2e_jobs_per_sec"`
	E2ERuns        []float64          `json:"e2e_runs"`
	Noop           float64            `json:"noop_jobs_per_sec"`
	NoopRuns       []float64          `json:"noop_runs"`
	Floor          float64            `json:"floor_jobs_per_sec"`
	FloorRuns      []float64          `json:"floor_runs"`
	Asynq          float64            `json:"asynq_jobs_per_sec"`
	AsynqRuns      []float64          `json:"asynq_runs"`
	E2EVsNoop      float64            `json:"e2e_vs_noop"`
	E2EVsFloor     float64            `json:"e2e_vs_floor"`
	E2EVsAsynq     float64            `json:"e2e_vs_asynq"`
	CPUPerJob      float64            `json:"cpu_ms_per_job"`
	CPUByComponent map[string]float64 `json:"cpu_ms_per_job_by_component"`
	NoopCPUPerJob  float64            `json:"noop_cpu_ms_per_job"`
	PeakRSSMB      map[string]float64 `json:"peak_rss_mb"`
	LatencyP50     float64            `json:"latency_p50_ms"`
	LatencyP99     float64            `json:"latency_p99_ms"`
	// StopMS is nil when not measured; 0 means no job was counted
	// processed after stop answered.
	StopMS     *float64     `json:"stop_ms"`
	Rates      []rateResult `json:"rates,omitempty"`
	Live       *liveResult  `json:"live,omitempty"`
	MemoryFlat *memoryFlat  `json:"memory_flat,omitempty"`
	Load       []float64    `json:"load_1m_at_each_step"`
}

type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	MemGB  string `json:"mem_gb"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, v, _ := strings.Cut(l, ":")
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			m.MemGB = fmt.Sprintf("%.1f", kb/1024/1024)
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	return m
}

func benchmark(ctx context.Context, cfg Config, log *slog.Logger) error {
	began := time.Now()
	res := &Results{Date: began.UTC(), Machine: describeMachine(), Prefetch: map[string]*figure{},
		Settings: map[string]any{"x": cfg.X, "repeats": cfg.Repeats, "rate_seconds": cfg.RateFor.Seconds(),
			"long": cfg.Long, "clients": cfg.Clients, "work_ms": 5, "latency_y": 6000},
		Notes: []string{
			"e2e: POST /function/run through the gateway to the run's finishedAt in Redis; noop: first publish to the connector's last ack; floor and asynq: run creation to finishedAt",
			"floor and asynq call the process function's Handle in the benchmark's process (same Redis scripts, same document write, same 5 ms work); they run while a product stack releases 10 jobs/s for the Y=600 rate check, which esstore they also use",
			"cpu_ms_per_job: utime+stime from /proc of every process of the stack (gateway, provider, functions, connector, relay, esstore, prometheus), Redis, RabbitMQ and the benchmark, over one e2e run, divided by X; Redis and RabbitMQ are shared with whatever else runs on the machine",
			"live: run.updatedAt (stamped by the function calling the Redis script) to arrival at each WebSocket client, for each message whose updatedAt is newer than the client's last; the relay sends at most one message per 100 ms per client (RELAY_SEND_INTERVAL)",
		}}
	d, err := newDirect(cfg)
	if err != nil {
		return err
	}
	defer d.close()
	for _, p := range cfg.Prefetches {
		res.Prefetch[strconv.Itoa(p)] = &figure{Prefetch: p}
	}
	for i, p := range cfg.Prefetches {
		f := res.Prefetch[strconv.Itoa(p)]
		if err := productStack(ctx, cfg, log, f, d, res, i == 0); err != nil {
			return err
		}
		if err := write(cfg.Out, res); err != nil {
			return err
		}
		if cfg.Steps["noop"] {
			if err := noopStack(ctx, cfg, log, f); err != nil {
				return err
			}
		}
		for _, f := range res.Prefetch {
			f.ratios()
		}
		res.Seconds = time.Since(began).Seconds()
		if err := write(cfg.Out, res); err != nil {
			return err
		}
	}
	fmt.Println(table(res))
	log.Info("results written", "path", cfg.Out, "took", time.Since(began).Round(time.Second))
	return nil
}

func (f *figure) ratios() {
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return round3(a / b)
	}
	f.E2EVsNoop, f.E2EVsFloor, f.E2EVsAsynq = div(f.E2E, f.Noop), div(f.E2E, f.Floor), div(f.E2E, f.Asynq)
}

func write(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// productStack takes every figure of the product at f.Prefetch. first also
// takes the figures that do not depend on the prefetch (rates, live, floor
// and Asynq at every prefetch) unless BENCH_LONG asks for them everywhere.
func productStack(ctx context.Context, cfg Config, log *slog.Logger, f *figure, d *direct, res *Results, first bool) error {
	b, err := startStack(ctx, cfg, log, f.Prefetch, false)
	if err != nil {
		return err
	}
	defer b.close()
	sctx, stopSampling := context.WithCancel(ctx)
	var rss rssSampler
	go rss.run(sctx, b.comps, 250*time.Millisecond)
	defer func() {
		stopSampling()
		f.PeakRSSMB = rss.peaksMB()
		delete(f.PeakRSSMB, "bench")
	}()

	var cpus []float64
	for i := range cfg.Repeats {
		if !cfg.Steps["e2e"] {
			break
		}
		f.Load = append(f.Load, loadAvg())
		jps, cpu, err := b.throughput(ctx, cfg.X)
		if err != nil {
			return fmt.Errorf("e2e at prefetch %d: %w", f.Prefetch, err)
		}
		var total float64
		for _, v := range cpu {
			total += v
		}
		log.Info("e2e", "prefetch", f.Prefetch, "run", i+1, "jobs_per_sec", round1(jps), "cpu_ms_per_job", round3(total/float64(cfg.X)),
			"cpu_ms_per_job_by_component", perJob(cpu, cfg.X))
		f.E2ERuns = append(f.E2ERuns, round1(jps))
		cpus = append(cpus, total/float64(cfg.X))
		if i == cfg.Repeats/2 || f.CPUByComponent == nil {
			f.CPUByComponent = perJob(cpu, cfg.X)
		}
	}
	f.E2E, f.CPUPerJob = round1(median(f.E2ERuns)), round3(median(cpus))

	if cfg.Steps["stop"] {
		f.Load = append(f.Load, loadAvg())
		ms, err := b.stopLatency(ctx, cfg.X)
		if err != nil {
			return fmt.Errorf("stop at prefetch %d: %w", f.Prefetch, err)
		}
		f.StopMS = &ms
		log.Info("stop", "prefetch", f.Prefetch, "stop_ms", ms)
	}
	if cfg.Steps["latency"] {
		f.Load = append(f.Load, loadAvg())
		if f.LatencyP50, f.LatencyP99, err = b.latency(ctx, 1000, 6000); err != nil {
			return fmt.Errorf("latency at prefetch %d: %w", f.Prefetch, err)
		}
		log.Info("latency", "prefetch", f.Prefetch, "p50_ms", f.LatencyP50, "p99_ms", f.LatencyP99)
	}
	if !cfg.Steps["rate"] || (!first && !cfg.Long) {
		return nil
	}
	f.Load = append(f.Load, loadAvg())
	slow, err := b.rate(ctx, 600, func(ctx context.Context) {
		time.Sleep(3 * time.Second) // let the first releases through
		lr, err := live(ctx, cfg.Clients, 45*time.Second)
		if err != nil {
			log.Warn("live", "err", err)
		}
		f.Live = &lr
		log.Info("live", "clients", lr.Connected, "messages", lr.Messages, "p50_ms", lr.P50ms, "p99_ms", lr.P99ms)
		if !first {
			return
		}
		for _, p := range cfg.Prefetches {
			g := res.Prefetch[strconv.Itoa(p)]
			for range cfg.Repeats {
				jps, err := d.floor(ctx, cfg.X, p)
				if err != nil {
					log.Warn("floor", "prefetch", p, "err", err)
					continue
				}
				g.FloorRuns = append(g.FloorRuns, round1(jps))
				jps, err = d.asynq(ctx, cfg.X, p)
				if err != nil {
					log.Warn("asynq", "prefetch", p, "err", err)
					continue
				}
				g.AsynqRuns = append(g.AsynqRuns, round1(jps))
			}
			g.Floor, g.Asynq = round1(median(g.FloorRuns)), round1(median(g.AsynqRuns))
			log.Info("direct", "prefetch", p, "floor_runs", g.FloorRuns, "asynq_runs", g.AsynqRuns)
		}
	})
	if err != nil {
		return fmt.Errorf("rate at Y=600: %w", err)
	}
	log.Info("rate", "y", slow.Y, "max_60s_over_y", slow.Max60sOverY, "max_1s", slow.Max1s, "bound", slow.Bound1s, "source", slow.Source)
	f.Load = append(f.Load, loadAvg())
	fast, err := b.rate(ctx, 60_000, nil)
	if err != nil {
		return fmt.Errorf("rate at Y=60000: %w", err)
	}
	log.Info("rate", "y", fast.Y, "max_60s_over_y", fast.Max60sOverY, "max_1s", fast.Max1s, "bound", fast.Bound1s, "source", fast.Source)
	f.Rates = []rateResult{slow, fast}

	if cfg.Long {
		mf, err := b.memoryFlat(ctx)
		if err != nil {
			return fmt.Errorf("memory_flat: %w", err)
		}
		f.MemoryFlat = mf
	}
	return nil
}

func noopStack(ctx context.Context, cfg Config, log *slog.Logger, f *figure) error {
	b, err := startStack(ctx, cfg, log, f.Prefetch, true)
	if err != nil {
		return err
	}
	defer b.close()
	var cpus []float64
	for i := range cfg.Repeats {
		f.Load = append(f.Load, loadAvg())
		jps, cpu, err := b.noopThroughput(ctx, cfg.X)
		if err != nil {
			return fmt.Errorf("noop at prefetch %d: %w", f.Prefetch, err)
		}
		var total float64
		for _, v := range cpu {
			total += v
		}
		log.Info("noop", "prefetch", f.Prefetch, "run", i+1, "jobs_per_sec", round1(jps))
		f.NoopRuns = append(f.NoopRuns, round1(jps))
		cpus = append(cpus, total/float64(cfg.X))
	}
	f.Noop, f.NoopCPUPerJob = round1(median(f.NoopRuns)), round3(median(cpus))
	return nil
}

// memoryFlat is the resident memory of the long-running parts at 100,000
// and at 1,000,000 processed jobs of one run.
type memoryFlat struct {
	At100kMB map[string]float64 `json:"at_100k_mb"`
	At1MMB   map[string]float64 `json:"at_1m_mb"`
	Flat     bool               `json:"flat"`
}

func (b *bench) memoryFlat(ctx context.Context) (*memoryFlat, error) {
	const x = 1_000_000
	r, err := b.start(ctx, x, run.MaxY)
	if err != nil {
		return nil, err
	}
	sample := func() map[string]float64 {
		snap := b.comps.snapshot()
		out := map[string]float64{}
		for _, n := range []string{"connector", "relay", "redis"} {
			out[n] = round1(float64(snap[n].rssKB()) / 1024)
		}
		return out
	}
	mf := &memoryFlat{}
	if _, err := waitRun(ctx, b.store, r.ID, time.Hour, time.Second, func(r run.Run) bool { return r.Processed >= 100_000 }); err != nil {
		return nil, err
	}
	mf.At100kMB = sample()
	if _, err := waitRun(ctx, b.store, r.ID, 2*time.Hour, time.Second, func(r run.Run) bool { return r.Processed >= x }); err != nil {
		return nil, err
	}
	mf.At1MMB = sample()
	mf.Flat = true
	for k, v := range mf.At100kMB {
		if mf.At1MMB[k] > v*1.5+10 {
			mf.Flat = false
		}
	}
	return mf, nil
}

// perJob divides each component's CPU milliseconds by x.
func perJob(cpu map[string]float64, x int64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range cpu {
		out[k] = round3(v / float64(x))
	}
	return out
}
