package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/openfaas/connector-sdk/types"
	"github.com/openfaas/faas-provider/sdk"
)

// CronTopic is the topic of functions that the cron trigger fires on their
// "schedule" annotation.
const CronTopic = "cron-function"

// Snapshot is one good view of the gateway's functions.
type Snapshot struct {
	// Lookup maps each topic to the functions subscribed to it, as the
	// gateway routes them ("name", or "name.namespace" where the provider
	// has namespaces), sorted.
	Lookup map[string][]string
	// Schedules maps each function (same naming) to its "schedule"
	// annotation, for those that have one. Empty when cron is off.
	Schedules map[string]string
	// At is when the gateway last answered; zero until it first did.
	At time.Time
}

// Topics keeps the topic map: it rebuilds it from the function annotations
// through the gateway every Config.Refresh and keeps the last good map
// while the gateway cannot be reached. It stands in for connector-sdk's
// Controller, whose refresh exits the process when the gateway is down.
type Topics struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	client  *http.Client // for the schedule listing
	builder *types.FunctionLookupBuilder
	tm      *types.TopicMap // what types.Invoker matches against

	mu      sync.Mutex
	snap    Snapshot
	changed chan struct{} // closed and replaced when snap's content changes
	failing bool
	warned  time.Time
}

// NewTopics returns a Topics with an empty map; Run fills it.
func NewTopics(cfg Config, log *slog.Logger, m *Metrics, client *http.Client) *Topics {
	tm := types.NewTopicMap()
	return &Topics{
		cfg:     cfg,
		log:     log,
		metrics: m,
		client:  client,
		// The builder's faas-provider SDK ignores the client passed here and
		// uses http.DefaultClient; main bounds that client's timeout.
		builder: types.NewFunctionLookupBuilder(cfg.Shared.GatewayURL, ",", client, cfg.Credentials),
		tm:      &tm,
		snap:    Snapshot{Lookup: map[string][]string{}, Schedules: map[string]string{}},
		changed: make(chan struct{}),
	}
}

// Watch returns the current snapshot and a channel that is closed once a
// snapshot with different content replaces it.
func (t *Topics) Watch() (Snapshot, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap, t.changed
}

// Map is the connector-sdk topic map, for types.Invoker.
func (t *Topics) Map() *types.TopicMap { return t.tm }

// Run refreshes at once, then every Config.Refresh, until ctx ends.
func (t *Topics) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.Refresh)
	defer tick.Stop()
	for {
		t.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Refresh rebuilds the map once. On failure (gateway unreachable, provider
// down, credentials refused) it keeps the last good map and warns: once
// when refreshes start failing, then at most once a minute.
func (t *Topics) Refresh(ctx context.Context) {
	lookup, err := t.builder.Build()
	if err != nil {
		err = fmt.Errorf("list functions for the topic map: %w", err)
	}
	schedules := map[string]string{}
	if err == nil && t.cfg.Cron {
		schedules, err = t.schedules(ctx)
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.metrics.Refreshes.WithLabelValues("error").Inc()
		if !t.failing || now.Sub(t.warned) >= time.Minute {
			t.log.Warn("topic map refresh failed; keeping the last topic map",
				"err", err, "topics", len(t.snap.Lookup), "last_refresh", t.snap.At)
			t.warned = now
		}
		t.failing = true
		return
	}
	t.metrics.Refreshes.WithLabelValues("ok").Inc()
	if t.failing {
		t.log.Info("topic map refreshed again")
		t.failing = false
	}
	for _, fns := range lookup {
		slices.Sort(fns)
	}
	same := maps.EqualFunc(lookup, t.snap.Lookup, slices.Equal) && maps.Equal(schedules, t.snap.Schedules)
	if !same {
		topic := t.cfg.Topic()
		if before, after := t.snap.Lookup[topic], lookup[topic]; !slices.Equal(before, after) {
			t.log.Info("subscribers changed", "topic", topic, "functions", after)
		}
		t.tm.Sync(&lookup)
		t.metrics.Topics.Set(float64(len(lookup)))
		close(t.changed)
		t.changed = make(chan struct{})
		t.snap.Lookup, t.snap.Schedules = lookup, schedules
	}
	t.snap.At = now
}

// schedules lists the "schedule" annotation of every function, named the
// way the lookup builder names them. It uses faas-provider's SDK directly
// because the builder keeps only the topic annotation.
func (t *Topics) schedules(ctx context.Context) (map[string]string, error) {
	gw := func() *url.URL {
		u, _ := url.Parse(t.cfg.Shared.GatewayURL) // checked by config.Read
		return u
	}
	// The SDK edits the URL it holds, so every call gets a fresh one.
	namespaces, err := (&sdk.SDK{GatewayURL: gw(), Client: t.client, Credentials: t.cfg.Credentials}).GetNamespaces()
	if err != nil {
		return nil, fmt.Errorf("list namespaces for cron schedules: %w", err)
	}
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	out := map[string]string{}
	for _, ns := range namespaces {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fns, err := (&sdk.SDK{GatewayURL: gw(), Client: t.client, Credentials: t.cfg.Credentials}).GetFunctions(ns)
		if err != nil {
			return nil, fmt.Errorf("list functions in namespace %q for cron schedules: %w", ns, err)
		}
		for _, fn := range fns {
			if fn.Annotations == nil {
				continue
			}
			if s, ok := (*fn.Annotations)["schedule"]; ok {
				name := fn.Name
				if ns != "" {
					name += "." + ns
				}
				out[name] = s
			}
		}
	}
	return out, nil
}
