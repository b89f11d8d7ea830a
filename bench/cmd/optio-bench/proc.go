package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTick = 100

// procInfo is what /proc says about one process.
type procInfo struct {
	pid, ppid int
	comm      string
	cpuTicks  int64 // utime + stime
	rssKB     int64
}

func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procInfo{}, false
	}
	// comm is in parentheses and may hold spaces: split after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 22 {
		return procInfo{}, false
	}
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, rss 24 (pages).
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	return procInfo{pid: pid, ppid: ppid, comm: string(b[open+1 : end]), cpuTicks: ut + st,
		rssKB: rss * int64(os.Getpagesize()) / 1024}, true
}

func allProcs() map[int]procInfo {
	out := map[int]procInfo{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out[pid] = p
		}
	}
	return out
}

// components groups the processes of a stack by component: the stack's
// children by name, the function processes (children of the provider) by
// their binary, Redis and RabbitMQ by command, and this benchmark itself.
type components struct {
	roots map[int]string // pid -> component, for the stack's direct children
}

func (c components) snapshot() map[string]procSet {
	procs := allProcs()
	out := map[string]procSet{}
	add := func(name string, p procInfo) {
		s := out[name]
		if s == nil {
			s = procSet{}
			out[name] = s
		}
		s[p.pid] = p
	}
	self := os.Getpid()
	for _, p := range procs {
		switch {
		case p.pid == self:
			add("bench", p)
		case p.comm == "redis-server":
			add("redis", p)
		case p.comm == "beam.smp" || p.comm == "erl_child_setup" || p.comm == "epmd":
			add("rabbitmq", p)
		default:
			if name, ok := c.roots[p.pid]; ok {
				add(name, p)
			} else if name, ok := c.roots[p.ppid]; ok && name == "provider" {
				add(strings.TrimPrefix(p.comm, "optio-"), p) // a function replica
			}
		}
	}
	return out
}

// procSet is the processes of one component.
type procSet map[int]procInfo

func (s procSet) rssKB() int64 {
	var n int64
	for _, p := range s {
		n += p.rssKB
	}
	return n
}

// cpuDelta is the CPU time every component spent between two snapshots, in
// milliseconds; a process that appeared in between counts from zero.
func cpuDelta(before, after map[string]procSet) map[string]float64 {
	out := map[string]float64{}
	for name, set := range after {
		var ticks int64
		for pid, p := range set {
			ticks += p.cpuTicks - before[name][pid].cpuTicks
		}
		out[name] = float64(ticks) * 1000 / clockTick
	}
	return out
}

// rssSampler keeps the peak resident memory of each component while it runs.
type rssSampler struct {
	mu   sync.Mutex
	peak map[string]int64 // KiB
}

func (r *rssSampler) run(ctx context.Context, c components, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		snap := c.snapshot()
		r.mu.Lock()
		if r.peak == nil {
			r.peak = map[string]int64{}
		}
		for name, set := range snap {
			r.peak[name] = max(r.peak[name], set.rssKB())
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *rssSampler) peaksMB() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]float64{}
	for k, v := range r.peak {
		out[k] = round1(float64(v) / 1024)
	}
	return out
}

// loadAvg is the 1-minute load average, to note how busy the machine was.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
