package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// table renders the results as the Markdown table kept in the README.
func table(res *Results) string {
	var ps []*figure
	for _, f := range res.Prefetch {
		ps = append(ps, f)
	}
	slices.SortFunc(ps, func(a, b *figure) int { return a.Prefetch - b.Prefetch })
	var sb strings.Builder
	sb.WriteString("| figure |")
	for _, f := range ps {
		fmt.Fprintf(&sb, " prefetch %d |", f.Prefetch)
	}
	sb.WriteString(" target |\n| --- |")
	for range ps {
		sb.WriteString(" ---: |")
	}
	sb.WriteString(" --- |\n")
	row := func(name, target string, cell func(f *figure) string) {
		fmt.Fprintf(&sb, "| %s |", name)
		for _, f := range ps {
			fmt.Fprintf(&sb, " %s |", cell(f))
		}
		fmt.Fprintf(&sb, " %s |\n", target)
	}
	num := func(v float64) string {
		if v == 0 {
			return "–"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	runs := func(v []float64) string {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = strconv.FormatFloat(x, 'f', 0, 64)
		}
		return strings.Join(s, ", ")
	}
	row("e2e_jobs_per_sec (median)", "≥ 1,500 at the better prefetch", func(f *figure) string { return fmt.Sprintf("**%s** (%s)", num(f.E2E), runs(f.E2ERuns)) })
	row("noop_jobs_per_sec", "", func(f *figure) string { return fmt.Sprintf("%s (%s)", num(f.Noop), runs(f.NoopRuns)) })
	row("floor_jobs_per_sec", "", func(f *figure) string { return fmt.Sprintf("%s (%s)", num(f.Floor), runs(f.FloorRuns)) })
	row("asynq_jobs_per_sec", "", func(f *figure) string { return fmt.Sprintf("%s (%s)", num(f.Asynq), runs(f.AsynqRuns)) })
	row("e2e_vs_noop", "≥ 0.7", func(f *figure) string { return num(f.E2EVsNoop) })
	row("e2e_vs_floor", "", func(f *figure) string { return num(f.E2EVsFloor) })
	row("e2e_vs_asynq", "", func(f *figure) string { return num(f.E2EVsAsynq) })
	row("cpu_ms_per_job (whole stack)", "", func(f *figure) string { return num(f.CPUPerJob) })
	row("noop cpu_ms_per_job", "", func(f *figure) string { return num(f.NoopCPUPerJob) })
	row("latency_p50_ms / p99 (Y=6,000)", "", func(f *figure) string {
		return fmt.Sprintf("%s / %s", num(f.LatencyP50), num(f.LatencyP99))
	})
	row("stop_ms", "< 1,000", func(f *figure) string {
		if f.StopMS == nil {
			return "–"
		}
		return strconv.FormatFloat(*f.StopMS, 'f', -1, 64)
	})
	for i, y := range []string{"600", "60,000"} {
		row("rate_max_60s_over_y, Y="+y, "≤ 1.0", func(f *figure) string {
			if i >= len(f.Rates) {
				return "–"
			}
			return num(f.Rates[i].Max60sOverY)
		})
		row("rate_max_1s, Y="+y, "≤ ceil(Y/60)+1", func(f *figure) string {
			if i >= len(f.Rates) {
				return "–"
			}
			return fmt.Sprintf("%d (≤ %d)", f.Rates[i].Max1s, f.Rates[i].Bound1s)
		})
	}
	row("live_p50_ms / p99 (100 clients)", "p99 < 250", func(f *figure) string {
		if f.Live == nil {
			return "–"
		}
		return fmt.Sprintf("%s / %s", num(f.Live.P50ms), num(f.Live.P99ms))
	})
	row("peak RSS MB", "", func(f *figure) string {
		var s []string
		for _, k := range slices.Sorted(maps.Keys(f.PeakRSSMB)) {
			s = append(s, fmt.Sprintf("%s %s", k, num(f.PeakRSSMB[k])))
		}
		return strings.Join(s, ", ")
	})
	row("memory_flat (BENCH_LONG=1)", "flat", func(f *figure) string {
		if f.MemoryFlat == nil {
			return "–"
		}
		return fmt.Sprintf("%v: 100k %v, 1M %v", f.MemoryFlat.Flat, f.MemoryFlat.At100kMB, f.MemoryFlat.At1MMB)
	})
	row("load (1 min) during the steps", "", func(f *figure) string {
		s := make([]string, len(f.Load))
		for i, v := range f.Load {
			s[i] = strconv.FormatFloat(v, 'f', 1, 64)
		}
		return strings.Join(s, " ")
	})
	fmt.Fprintf(&sb, "\nMachine: %s, %d cores, %s GB, Linux %s, %s; %s UTC; took %.0f s.\n",
		res.Machine.CPU, res.Machine.Cores, res.Machine.MemGB, res.Machine.Kernel, res.Machine.Go,
		res.Date.Format("2006-01-02 15:04"), res.Seconds)
	return sb.String()
}
