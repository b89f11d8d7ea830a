package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestScheduleParser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		ok   bool
	}{
		{"* * * * *", true},
		{"*/5 * * * *", true},
		{"0 9 * * MON-FRI", true},
		{"@hourly", true},
		{"@every 30s", true},
		{"", false},
		{"* * * *", false},
		{"* * * * * *", false}, // seconds are not part of the standard
		{"61 * * * *", false},
		{"every minute", false},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			_, err := scheduleParser.Parse(tt.spec)
			if (err == nil) != tt.ok {
				t.Errorf("Parse(%q) error = %v, want ok=%v", tt.spec, err, tt.ok)
			}
		})
	}
}

func TestCronFiresAndFollowsTopicMap(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	h := newHarness(t, gw, map[string]string{"CONNECTOR_CRON": "true", "CONNECTOR_SHUTDOWN_TIMEOUT": "300ms"})
	cronFn := func(name, schedule string, handle func(w http.ResponseWriter, r *http.Request)) fakeFunction {
		a := map[string]string{"topic": CronTopic}
		if schedule != "" {
			a["schedule"] = schedule
		}
		return fakeFunction{Name: name, Annotations: a, Handle: handle}
	}
	// "slow" outlives its period: it is fired again anyway.
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2500 * time.Millisecond):
		case <-r.Context().Done():
		}
	}
	gw.set(
		cronFn("tick", "@every 1s", nil),
		cronFn("slow", "@every 1s", slow),
		cronFn("bad", "not a schedule", nil),
		cronFn("unscheduled", "", nil),
		subscriber("process", h.cfg.Topic(), nil),
	)
	h.start()
	eventually(t, "tick fires twice", func() bool { return len(gw.callsTo("tick")) >= 2 })
	eventually(t, "slow runs twice at once", func() bool { return gw.maxInflight.Load() >= 2 && len(gw.callsTo("slow")) >= 2 })
	for _, c := range gw.callsTo("tick") {
		if got := c.Header.Get("X-Topic"); got != CronTopic {
			t.Errorf("X-Topic = %q, want %q", got, CronTopic)
		}
	}
	for _, fn := range []string{"bad", "unscheduled", "process"} {
		if n := len(gw.callsTo(fn)); n != 0 {
			t.Errorf("%s fired %d times, want 0", fn, n)
		}
	}
	if got := testutil.ToFloat64(h.c.Metrics.CronFirings.WithLabelValues("tick", "2xx")); got < 2 {
		t.Errorf("tick 2xx firings = %v, want at least 2", got)
	}

	// A function that joins the topic map later is scheduled...
	gw.set(cronFn("tick", "@every 1s", nil), cronFn("late", "@every 1s", nil))
	eventually(t, "late fires", func() bool { return len(gw.callsTo("late")) >= 1 })

	// ...and one that leaves it is unscheduled.
	gw.set(cronFn("late", "@every 1s", nil))
	eventually(t, "the topic map loses tick", func() bool {
		snap, _ := h.c.Topics.Watch()
		_, ok := snap.Schedules["tick"]
		return !ok
	})
	time.Sleep(200 * time.Millisecond) // let Cron apply the refresh
	before := len(gw.callsTo("tick"))
	lateBefore := len(gw.callsTo("late"))
	eventually(t, "late fires twice more", func() bool { return len(gw.callsTo("late")) >= lateBefore+2 })
	if after := len(gw.callsTo("tick")); after > before+1 { // one firing may have been under way
		t.Errorf("tick fired %d times after it left the topic map", after-before)
	}
}
