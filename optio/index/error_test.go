package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
)

func TestErrorFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		status       int
		body         string
		wantType     string
		wantReason   string
		wantRetrying bool
	}{
		{"typed error", 404, `{"error":{"root_cause":[],"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}`,
			"index_not_found_exception", "no such index [x]", false},
		{"caused by", 400, `{"error":{"type":"document_parsing_exception","reason":"failed","caused_by":{"type":"number_format_exception","reason":"bad"}},"status":400}`,
			"document_parsing_exception", "failed (caused by number_format_exception: bad)", false},
		{"text error", 405, `{"error":"Incorrect HTTP method","status":405}`, "", "Incorrect HTTP method", false},
		{"no body", 503, ``, "", "Service Unavailable", true},
		{"proxy page", 502, `<html>bad gateway</html>`, "", "<html>bad gateway</html>", true},
		{"rejected", 429, `{"error":{"type":"es_rejected_execution_exception","reason":"busy"},"status":429}`,
			"es_rejected_execution_exception", "busy", true},
		{"gateway timeout", 504, `{}`, "", "{}", true},
		{"conflict", 409, `{"error":{"type":"version_conflict_engine_exception","reason":"x"},"status":409}`,
			"version_conflict_engine_exception", "x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := errorFrom("doing", tc.status, []byte(tc.body))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("errorFrom = %T, want *Error", err)
			}
			if e.Status != tc.status || e.Type != tc.wantType || e.Reason != tc.wantReason {
				t.Fatalf("errorFrom = %+v, want status %d type %q reason %q", e, tc.status, tc.wantType, tc.wantReason)
			}
			wrapped := fmt.Errorf("processing job: %w", err)
			if IsRetryable(wrapped) != tc.wantRetrying {
				t.Fatalf("IsRetryable = %v, want %v", IsRetryable(wrapped), tc.wantRetrying)
			}
		})
	}
}

func TestTransportErrorsRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"eof", io.EOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled", context.Canceled, false},
		{"other", errors.New("the client noticed that the server is not Elasticsearch"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := IsRetryable(&Error{Op: "x", Err: tc.err}); got != tc.want && tc.err != nil {
				t.Fatalf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if IsRetryable(tc.err) && tc.err != nil {
				t.Fatalf("a bare %v must not be retryable without *Error", tc.err)
			}
		})
	}
	if IsRetryable(nil) {
		t.Fatal("IsRetryable(nil) = true")
	}
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ix, err := New(Config{URL: "http://" + addr, Index: "x", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ix.Put(context.Background(), Doc{RunID: "r", JobID: 1})
	if !IsRetryable(err) {
		t.Fatalf("Put to a closed port: %v, want a retryable error", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"", "127.0.0.1:9200", "http://"} {
		if _, err := New(Config{URL: url}); err == nil {
			t.Errorf("New(URL=%q) = nil error, want one naming ES_URL", url)
		}
	}
	ix, err := New(Config{URL: "http://127.0.0.1:9200"})
	if err != nil || ix.Name() != "optio_jobs" {
		t.Fatalf("New = %v, %v; want index optio_jobs", ix, err)
	}
}
