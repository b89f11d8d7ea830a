// Package api holds Optio's HTTP contract as the functions speak it: the run
// request and its validation, JSON answers, and errors as {"error": "..."}.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/run"
)

// MaxBody is the largest request body any function accepts.
const MaxBody = 64 << 10

// Error is a client error: its Status is a 4xx code and its message says
// what is wrong with the request.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// RunRequest is the body of POST /function/run.
type RunRequest struct {
	X int64 `json:"x"`
	Y int64 `json:"y"`
}

// DecodeRunRequest parses and checks a run request: a JSON object with
// exactly the integer fields x (1..10,000,000) and y (1..1,000,000).
func DecodeRunRequest(body []byte) (RunRequest, error) {
	if len(body) > MaxBody {
		// 400, not 413: PRODUCT.md answers 400 for anything malformed.
		return RunRequest{}, badRequest("request body is %d bytes; at most %d are accepted", len(body), MaxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return RunRequest{}, badRequest(`request body is empty; send {"x": <total jobs>, "y": <jobs per minute>}`)
	}
	// Decode into raw fields first so that a missing field, null, a string
	// or a fraction each get their own message.
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return RunRequest{}, badRequest("request body is not a JSON object: %s", jsonProblem(err))
	}
	if raw == nil {
		return RunRequest{}, badRequest("request body must be a JSON object, not null")
	}
	if dec.More() {
		return RunRequest{}, badRequest("request body has data after the JSON object")
	}
	for k := range raw {
		if k != "x" && k != "y" {
			return RunRequest{}, badRequest("unknown field %q; only x and y are accepted", k)
		}
	}
	var req RunRequest
	var err error
	if req.X, err = intField(raw, "x", 1, run.MaxX, "total jobs"); err != nil {
		return RunRequest{}, err
	}
	if req.Y, err = intField(raw, "y", 1, run.MaxY, "jobs per minute"); err != nil {
		return RunRequest{}, err
	}
	return req, nil
}

func intField(raw map[string]json.RawMessage, name string, lo, hi int64, meaning string) (int64, error) {
	v, ok := raw[name]
	if !ok {
		return 0, badRequest("field %s (%s) is missing", name, meaning)
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var any any
	if err := d.Decode(&any); err != nil {
		return 0, badRequest("field %s is not valid JSON", name)
	}
	n, ok = any.(json.Number)
	if !ok {
		return 0, badRequest("field %s must be a whole number, got %s", name, describe(v))
	}
	i, err := n.Int64()
	if err != nil {
		if strings.ContainsAny(n.String(), ".eE") {
			return 0, badRequest("field %s must be a whole number, got %s", name, n)
		}
		return 0, badRequest("field %s=%s is out of range: it must be between %d and %d", name, n, lo, hi)
	}
	if i < lo || i > hi {
		return 0, badRequest("field %s=%d is out of range: it must be between %d and %d", name, i, lo, hi)
	}
	return i, nil
}

func describe(v json.RawMessage) string {
	s := strings.TrimSpace(string(v))
	switch {
	case s == "null":
		return "null"
	case strings.HasPrefix(s, `"`):
		return "a string"
	case s == "true" || s == "false":
		return "a boolean"
	case strings.HasPrefix(s, "["):
		return "an array"
	case strings.HasPrefix(s, "{"):
		return "an object"
	}
	return s
}

func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		return "expected an object, got " + typ.Value
	case errors.Is(err, context.Canceled):
		return "request cancelled"
	}
	return err.Error()
}

// Authorize checks the bearer token of a request when token is set: it
// answers 401 with {"error"} (and WWW-Authenticate) unless the request
// carries "Authorization: Bearer <token>". The comparison takes the same
// time whatever the token offered, so it reveals nothing of the right one.
func Authorize(req handler.Request, token string) (handler.Response, bool) {
	if token == "" {
		return handler.Response{}, true
	}
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	// Hashing both sides first makes the comparison constant-time in the
	// length too.
	want, offered := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(strings.TrimSpace(got)))
	if ok && subtle.ConstantTimeCompare(want[:], offered[:]) == 1 {
		return handler.Response{}, true
	}
	msg := "this call needs an API token: send the header Authorization: Bearer <token>"
	if ok {
		msg = "the API token is not valid"
	}
	r := Fail(http.StatusUnauthorized, msg)
	r.Header.Set("WWW-Authenticate", `Bearer realm="optio"`)
	return r, false
}

// JSON answers status with v as JSON.
func JSON(status int, v any) handler.Response {
	b, err := json.Marshal(v)
	if err != nil {
		return Fail(http.StatusInternalServerError, "encode answer: "+err.Error())
	}
	return handler.Response{
		StatusCode: status,
		Body:       append(b, '\n'),
		Header:     http.Header{"Content-Type": []string{"application/json"}},
	}
}

// Fail answers status with {"error": msg}.
func Fail(status int, msg string) handler.Response {
	return JSON(status, map[string]string{"error": msg})
}

// RunWithError is a run answered together with an error, as in 409.
type RunWithError struct {
	run.Run
	Error string `json:"error"`
}

// Context returns the request's context, or a background one when the
// template did not set it.
func Context(req handler.Request) context.Context {
	if ctx := req.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// Method answers 405 unless req uses one of the allowed methods.
func Method(req handler.Request, allowed ...string) (handler.Response, bool) {
	for _, m := range allowed {
		if req.Method == m {
			return handler.Response{}, true
		}
	}
	r := Fail(http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed; use %s", req.Method, strings.Join(allowed, " or ")))
	r.Header.Set("Allow", strings.Join(allowed, ", "))
	return r, false
}
