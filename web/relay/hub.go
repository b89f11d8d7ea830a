package relay

import (
	"encoding/json"
	"sync"
	"time"

	"optio.dev/optio/run"
)

// Hub holds the latest state of the current run and tells browsers when it
// changes. Updating it never waits for a browser: a change closes the
// current "changed" channel, and each browser's writer, in its own time,
// asks for the latest message. That is each browser's bounded send queue:
// one slot holding the newest state, which replaces any state the browser
// has not been sent yet.
type Hub struct {
	now func() time.Time

	mu      sync.Mutex
	cur     run.Run
	have    bool
	meter   *meter
	seq     uint64
	changed chan struct{}
	msg     []byte // encoding of seq, made on first demand
	msgSeq  uint64
}

// NewHub returns an empty hub on the clock now.
func NewHub(now func() time.Time) *Hub {
	return &Hub{now: now, changed: make(chan struct{})}
}

// Update offers a state of a run, from an event or a snapshot. It is
// applied only if it supersedes the one held, and reports whether it did.
func (h *Hub) Update(r run.Run) bool { return h.update(r, nil) }

// NeedsHistory tells whether a state of run id would start following a
// run that has already processed jobs, for which the source should fetch
// the release histogram and call UpdateWithHistory.
func (h *Hub) NeedsHistory(r run.Run) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return r.Processed > 0 && (h.meter == nil || h.meter.runID != r.ID) && (!h.have || supersedes(r, h.cur))
}

// UpdateWithHistory is Update for a run the relay meets in mid-run, with
// its release histogram (unix second -> jobs released) to rebuild the
// throughput before now.
func (h *Hub) UpdateWithHistory(r run.Run, released map[int64]int64) bool {
	return h.update(r, released)
}

func (h *Hub) update(r run.Run, released map[int64]int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.have && (!supersedes(r, h.cur) || same(r, h.cur)) {
		return false
	}
	now := h.now()
	if h.meter == nil || h.meter.runID != r.ID {
		h.meter = newMeter(r, now, released)
	}
	h.meter.observe(r.Processed, now)
	h.cur, h.have = r, true
	h.bump()
	return true
}

// Tick republishes a running run so that its measured rate and ETA follow
// the clock even when no job moves.
func (h *Hub) Tick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.have && h.cur.State == run.Running {
		h.bump()
	}
}

func (h *Hub) bump() {
	h.seq++
	close(h.changed)
	h.changed = make(chan struct{})
}

// Latest returns the newest message and its sequence number (0 and nil
// before the first state is known), and a channel closed at the next
// change.
func (h *Hub) Latest() (uint64, []byte, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.have {
		return 0, nil, h.changed
	}
	if h.msgSeq != h.seq {
		now := h.now()
		m := Message{
			Type:       "state",
			Seq:        h.seq,
			SentAt:     now.UnixMilli(),
			Run:        h.meter.derive(h.cur, now),
			Throughput: h.meter.throughput(),
		}
		b, err := json.Marshal(m)
		if err != nil {
			// A Message holds only numbers, strings and times: Marshal
			// cannot fail on it.
			return 0, nil, h.changed
		}
		h.msg, h.msgSeq = b, h.seq
	}
	return h.seq, h.msg, h.changed
}

// Current returns the run held, and whether any is.
func (h *Hub) Current() (run.Run, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur, h.have
}
