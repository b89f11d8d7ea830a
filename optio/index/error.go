package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// ErrRetryable matches (with errors.Is) every error worth trying again
// later: 429, 502, 503, 504, timeouts and connection errors.
var ErrRetryable = errors.New("retryable Elasticsearch error")

// Error is a failed call: either Elasticsearch answered with an error status
// (Status, Type and Reason from its error body) or the request did not get an
// answer (Err).
type Error struct {
	// Op says what was being done, e.g. "writing document r-1-7".
	Op string
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Type and Reason are error.type and error.reason of the answer, e.g.
	// "index_not_found_exception", "no such index [x]".
	Type, Reason string
	// Err is the transport error, or a decoding error.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	case e.Type != "":
		return fmt.Sprintf("%s: status %d: %s: %s", e.Op, e.Status, e.Type, e.Reason)
	case e.Err != nil:
		return fmt.Sprintf("%s: status %d: %v", e.Op, e.Status, e.Err)
	}
	return fmt.Sprintf("%s: status %d: %s", e.Op, e.Status, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRetryable) true for retryable errors.
func (e *Error) Is(target error) bool { return target == ErrRetryable && e.Retryable() }

// Retryable reports whether trying again later may succeed.
func (e *Error) Retryable() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case 0:
		return retryableTransport(e.Err)
	}
	return false
}

// IsRetryable reports whether err is worth trying again later (429, 502,
// 503, 504, a timeout or a connection error); false for nil and for
// permanent errors such as a bad document, a missing index or a
// cancelled context.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// retryableTransport classifies an error that came without an answer.
func retryableTransport(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // timeouts, refused and reset connections, DNS failures
	}
	return false
}

// errorFrom builds the *Error of a non-2xx answer from its body, which
// Elasticsearch shapes as {"error":{"type","reason",...},"status":N} (or
// {"error":"text","status":N} for routing failures).
func errorFrom(doing string, status int, body []byte) error {
	e := &Error{Op: doing, Status: status}
	var obj struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &obj) == nil && len(obj.Error) > 0 {
		var detail struct {
			Type     string `json:"type"`
			Reason   string `json:"reason"`
			CausedBy *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"caused_by"`
		}
		var text string
		switch {
		case json.Unmarshal(obj.Error, &detail) == nil && detail.Type != "":
			e.Type, e.Reason = detail.Type, detail.Reason
			if c := detail.CausedBy; c != nil {
				e.Reason += fmt.Sprintf(" (caused by %s: %s)", c.Type, c.Reason)
			}
		case json.Unmarshal(obj.Error, &text) == nil:
			e.Reason = text
		}
		return e
	}
	const max = 512
	if len(body) > max {
		body = body[:max]
	}
	e.Reason = string(body)
	if e.Reason == "" {
		e.Reason = http.StatusText(status)
	}
	return e
}
