package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	handler "github.com/openfaas/templates-sdk/go-http"
)

func TestDecodeRunRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		want   RunRequest
		status int
		msg    string // part of the error message
	}{
		{"valid", `{"x": 1000, "y": 10}`, RunRequest{1000, 10}, 0, ""},
		{"limits", `{"x": 10000000, "y": 1000000}`, RunRequest{10_000_000, 1_000_000}, 0, ""},
		{"smallest", `{"y":1,"x":1}`, RunRequest{1, 1}, 0, ""},
		{"exponent integer", `{"x": 1e3, "y": 10}`, RunRequest{}, 400, "whole number"},
		{"empty", ``, RunRequest{}, 400, "empty"},
		{"spaces", "  \n", RunRequest{}, 400, "empty"},
		{"not json", `x=1&y=2`, RunRequest{}, 400, "not a JSON object"},
		{"array", `[1,2]`, RunRequest{}, 400, "not a JSON object"},
		{"null", `null`, RunRequest{}, 400, "not null"},
		{"truncated", `{"x": 10, "y":`, RunRequest{}, 400, "not a JSON object"},
		{"trailing", `{"x": 10, "y": 1} {}`, RunRequest{}, 400, "after the JSON object"},
		{"unknown field", `{"x": 10, "y": 1, "z": 3}`, RunRequest{}, 400, `unknown field "z"`},
		{"missing x", `{"y": 1}`, RunRequest{}, 400, "x (total jobs) is missing"},
		{"missing y", `{"x": 1}`, RunRequest{}, 400, "y (jobs per minute) is missing"},
		{"x zero", `{"x": 0, "y": 1}`, RunRequest{}, 400, "x=0 is out of range"},
		{"x negative", `{"x": -5, "y": 1}`, RunRequest{}, 400, "out of range"},
		{"x too big", `{"x": 10000001, "y": 1}`, RunRequest{}, 400, "between 1 and 10000000"},
		{"y too big", `{"x": 1, "y": 1000001}`, RunRequest{}, 400, "between 1 and 1000000"},
		{"x huge", `{"x": 123456789012345678901234567890, "y": 1}`, RunRequest{}, 400, "out of range"},
		{"x fraction", `{"x": 1.5, "y": 1}`, RunRequest{}, 400, "whole number, got 1.5"},
		{"x string", `{"x": "10", "y": 1}`, RunRequest{}, 400, "got a string"},
		{"y null", `{"x": 10, "y": null}`, RunRequest{}, 400, "got null"},
		{"y bool", `{"x": 10, "y": true}`, RunRequest{}, 400, "got a boolean"},
		{"too large", `{"x": 1, "y": 1, "pad": "` + strings.Repeat("a", MaxBody) + `"}`, RunRequest{}, 400, "at most 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeRunRequest([]byte(tt.body))
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Fatalf("request (-want +got):\n%s", diff)
				}
				return
			}
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if apiErr.Status != tt.status || !strings.Contains(apiErr.Message, tt.msg) {
				t.Fatalf("got %d %q; want %d containing %q", apiErr.Status, apiErr.Message, tt.status, tt.msg)
			}
		})
	}
}

func TestFailIsJSONError(t *testing.T) {
	t.Parallel()
	r := Fail(http.StatusBadRequest, `x "quoted"`)
	var body map[string]string
	if err := json.Unmarshal(r.Body, &body); err != nil || body["error"] != `x "quoted"` {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	if r.StatusCode != 400 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

// FuzzDecodeRunRequest: whatever the body, the parser never panics, an
// accepted request is in range, and a refusal is a 4xx with a message.
func FuzzDecodeRunRequest(f *testing.F) {
	for _, s := range []string{`{"x": 1000, "y": 10}`, `{"x": 1.5}`, `[]`, `null`, `{"x":"1","y":2}`, `{"x":1,"y":1}{`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRunRequest(body)
		if err == nil {
			if req.X < 1 || req.X > 10_000_000 || req.Y < 1 || req.Y > 1_000_000 {
				t.Fatalf("accepted out-of-range request %+v from %q", req, body)
			}
			return
		}
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status < 400 || apiErr.Status > 499 || apiErr.Message == "" {
			t.Fatalf("refusal of %q is %v, want a 4xx *Error with a message", body, err)
		}
	})
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, header string
		ok                  bool
		msg                 string
	}{
		{"no token configured", "", "", true, ""},
		{"no token configured, header ignored", "", "Bearer anything", true, ""},
		{"right token", "s3cret", "Bearer s3cret", true, ""},
		{"missing header", "s3cret", "", false, "needs an API token"},
		{"wrong token", "s3cret", "Bearer s3cre", false, "not valid"},
		{"longer token", "s3cret", "Bearer s3cret0", false, "not valid"},
		{"basic instead of bearer", "s3cret", "Basic czNjcmV0", false, "needs an API token"},
		{"empty bearer", "s3cret", "Bearer ", false, "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := handler.Request{Header: http.Header{}}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, ok := Authorize(req, tt.token)
			if ok != tt.ok {
				t.Fatalf("Authorize = %v, want %v", ok, tt.ok)
			}
			if ok {
				return
			}
			var body map[string]string
			if err := json.Unmarshal(resp.Body, &body); err != nil || resp.StatusCode != http.StatusUnauthorized ||
				!strings.Contains(body["error"], tt.msg) || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("answer = %d %s %v, want 401 with an error containing %q", resp.StatusCode, resp.Body, resp.Header, tt.msg)
			}
		})
	}
}
