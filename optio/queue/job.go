// Package queue holds Optio's RabbitMQ side: the job message, the topology of
// the jobs queue and its dead-letter queue, and a publisher with confirms.
package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxJobBytes bounds a job message; anything larger is not a job of ours.
const MaxJobBytes = 1024

// Job is one message on the jobs queue: which job of which run, and when the
// scheduler released it (for latency and rate measurements).
type Job struct {
	RunID      string    `json:"runId"`
	JobID      int64     `json:"jobId"`
	ReleasedAt time.Time `json:"releasedAt"`
	// Retry marks a job requeued from the dead-letter queue (optio-dlq
	// requeue): process tries it again even if it was counted as failed.
	Retry bool `json:"retry,omitempty"`
}

// ErrBadJob is wrapped by every DecodeJob error, so callers can answer 400.
var ErrBadJob = errors.New("bad job message")

// Encode returns the job's wire form.
func (j Job) Encode() []byte {
	b, _ := json.Marshal(j) // a struct of string, int64 and time cannot fail
	return b
}

// DecodeJob parses and checks a job message. It rejects unknown fields,
// trailing data, oversized bodies and out-of-range values.
func DecodeJob(body []byte) (Job, error) {
	var j Job
	if len(body) > MaxJobBytes {
		return j, fmt.Errorf("%w: %d bytes, at most %d", ErrBadJob, len(body), MaxJobBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Job{}, fmt.Errorf("%w: %v", ErrBadJob, err)
	}
	if dec.More() {
		return Job{}, fmt.Errorf("%w: trailing data after the JSON object", ErrBadJob)
	}
	switch {
	case j.RunID == "" || len(j.RunID) > 64 || strings.ContainsAny(j.RunID, " \t\r\n/"):
		return Job{}, fmt.Errorf("%w: runId must be 1 to 64 characters without spaces or slashes", ErrBadJob)
	case j.JobID < 0:
		return Job{}, fmt.Errorf("%w: jobId must not be negative", ErrBadJob)
	}
	return j, nil
}
