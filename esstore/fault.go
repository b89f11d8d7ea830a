package esstore

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Fault is a TEST AID, not an Elasticsearch feature: it makes the store
// answer the next Count matching requests with an error status, drop their
// connection, or delay them, so clients' retry and error handling can be
// tested. Faults are set at start (ESSTORE_FAULTS, a JSON array) or at run
// time (POST /_optio/faults with one Fault object; GET lists them, DELETE
// clears them, or only one index's with ?index=).
type Fault struct {
	// Status is the HTTP status answered (e.g. 429, 503); 0 answers normally
	// (after DelayMs).
	Status int `json:"status,omitempty"`
	// Count is how many matching requests the fault hits. Default 1.
	Count int `json:"count,omitempty"`
	// DelayMs delays each hit request by this many milliseconds.
	DelayMs int `json:"delayMs,omitempty"`
	// Drop closes the connection without an answer (a connection error).
	Drop bool `json:"drop,omitempty"`
	// Index limits the fault to requests on this index ("" = any request
	// except GET / and /_optio/).
	Index string `json:"index,omitempty"`
	// Method limits the fault to one HTTP method ("" = any).
	Method string `json:"method,omitempty"`
}

func (f Fault) validate() error {
	switch {
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d is not an error status (400-599)", f.Status)
	case f.Count < 0:
		return fmt.Errorf("count %d is negative", f.Count)
	case f.DelayMs < 0 || f.DelayMs > 600_000:
		return fmt.Errorf("delayMs %d is outside 0..600000", f.DelayMs)
	case f.Status == 0 && !f.Drop && f.DelayMs == 0:
		return fmt.Errorf("a fault needs a status, drop or delayMs")
	}
	return nil
}

// faults is the list of pending faults.
type faults struct {
	mu   sync.Mutex
	list []Fault
}

func (fs *faults) add(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.Count == 0 {
		f.Count = 1
	}
	fs.mu.Lock()
	fs.list = append(fs.list, f)
	fs.mu.Unlock()
	return nil
}

func (fs *faults) clear(index string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	kept := fs.list[:0]
	for _, f := range fs.list {
		if index != "" && f.Index != index {
			kept = append(kept, f)
		}
	}
	fs.list = kept
}

func (fs *faults) snapshot() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]Fault{}, fs.list...)
}

// take returns the fault that hits this request, if any, and uses it up.
func (fs *faults) take(method, index string) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if (f.Index != "" && f.Index != index) || (f.Method != "" && !strings.EqualFold(f.Method, method)) {
			continue
		}
		fs.list[i].Count--
		if fs.list[i].Count <= 0 {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
		}
		return f, true
	}
	return Fault{}, false
}

// injected is the error body of an injected status, shaped like what
// Elasticsearch answers for it.
func injected(status int) *Error {
	const why = " (injected by optio-esstore fault injection, a test aid)"
	switch status {
	case http.StatusTooManyRequests:
		return &Error{Status: status, Type: "es_rejected_execution_exception",
			Reason: "rejected execution of coordinating operation" + why}
	case http.StatusServiceUnavailable:
		return &Error{Status: status, Type: "unavailable_shards_exception",
			Reason: "primary shard is not active" + why}
	}
	return &Error{Status: status, Type: "optio_injected_fault", Reason: http.StatusText(status) + why}
}

// ParseFaults reads ESSTORE_FAULTS: a JSON array of Fault.
func ParseFaults(s string) ([]Fault, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var fs []Fault
	if err := json.Unmarshal([]byte(s), &fs); err != nil {
		return nil, fmt.Errorf("ESSTORE_FAULTS is not a JSON array of faults: %w", err)
	}
	for i, f := range fs {
		if err := f.validate(); err != nil {
			return nil, fmt.Errorf("ESSTORE_FAULTS[%d]: %w", i, err)
		}
	}
	return fs, nil
}
