package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"optio.dev/optio/run"
)

// TestUntrustedCallers checks what a caller without credentials can do:
// with an API token configured, run and stop answer 401 unless the request
// carries it, status stays open unless OPTIO_STATUS_AUTH is set, and the
// gateway's /system API needs its basic auth credentials.
func TestUntrustedCallers(t *testing.T) {
	ensureIdle(t)
	const token = "e2e-token-3f9a"
	g := stack.gateway
	// call invokes a function with an optional bearer token.
	call := func(method, fn, bearer, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, g.url+"/function/"+fn, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		res, err := g.http.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, fn, err)
		}
		defer res.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(b, &out)
		return res.StatusCode, out
	}

	t.Run("the gateway's /system API needs basic auth", func(t *testing.T) {
		system := func(user, password string) int {
			req, _ := http.NewRequest(http.MethodGet, g.url+"/system/functions", nil)
			if user != "" {
				req.SetBasicAuth(user, password)
			}
			res, err := g.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		creds := stack.Credentials()
		if code := system("", ""); code != http.StatusUnauthorized {
			t.Errorf("/system/functions without credentials: %d, want 401", code)
		}
		if code := system(creds.User, creds.Password+"x"); code != http.StatusUnauthorized {
			t.Errorf("/system/functions with a wrong password: %d, want 401", code)
		}
		if code := system(creds.User, creds.Password); code != http.StatusOK {
			t.Errorf("/system/functions with the credentials: %d, want 200", code)
		}
	})

	t.Run("run and stop need the API token; status stays open", func(t *testing.T) {
		for _, fn := range []string{"run", "stop"} {
			setFunctionEnv(t, fn, map[string]string{"OPTIO_API_TOKEN": token})
		}
		before := g.status(t)
		for _, c := range []struct{ fn, bearer, body string }{
			{"run", "", `{"x": 5, "y": 600}`},
			{"run", "wrong", `{"x": 5, "y": 600}`},
			{"run", token + "0", `{"x": 5, "y": 600}`},
			{"stop", "", ``},
			{"stop", "wrong", ``},
		} {
			code, body := call(http.MethodPost, c.fn, c.bearer, c.body)
			if msg, _ := body["error"].(string); code != http.StatusUnauthorized || msg == "" {
				t.Errorf("%s with token %q answered %d %v, want 401 with an error", c.fn, c.bearer, code, body)
			}
		}
		if after := g.status(t); after.ID != before.ID || after.State != before.State {
			t.Fatalf("refused calls changed the run: %+v then %+v", before, after)
		}
		code, body := call(http.MethodPost, "run", token, `{"x": 5, "y": 600}`)
		if code != http.StatusCreated {
			t.Fatalf("run with the token answered %d %v", code, body)
		}
		if code, body := call(http.MethodPost, "stop", token, ``); code != http.StatusOK || body["state"] != string(run.Stopped) {
			t.Fatalf("stop with the token answered %d %v", code, body)
		}
		if code, _ := call(http.MethodGet, "status", "", ``); code != http.StatusOK {
			t.Errorf("status without a token answered %d, want 200 (open by default)", code)
		}
		id, _ := body["runId"].(string)
		settle(t, id, time.Minute)
	})

	t.Run("status needs the token with OPTIO_STATUS_AUTH", func(t *testing.T) {
		setFunctionEnv(t, "status", map[string]string{"OPTIO_API_TOKEN": token, "OPTIO_STATUS_AUTH": "true"})
		if code, body := call(http.MethodGet, "status", "", ``); code != http.StatusUnauthorized || body["error"] == nil {
			t.Errorf("status without a token answered %d %v, want 401", code, body)
		}
		if code, body := call(http.MethodGet, "status", token, ``); code != http.StatusOK {
			t.Errorf("status with the token answered %d %v, want 200", code, body)
		}
	})
}

// TestBadInputChangesNothing sends malformed, truncated, oversized and
// wrongly typed bodies through the gateway: each answers 4xx with an error,
// and no key of the stack's Redis appears, changes or disappears.
func TestBadInputChangesNothing(t *testing.T) {
	ensureIdle(t)
	g := stack.gateway
	ctx := context.Background()
	snapshot := func() map[string]string {
		rdb := redisClient()
		keys, err := rdb.Keys(ctx, stack.env["OPTIO_PREFIX"]+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, k := range keys {
			v, _ := rdb.Dump(ctx, k).Result()
			out[k] = v
		}
		return out
	}
	before := snapshot()
	bodies := []string{
		`{"x": 10, "y":`, `{"x": 1`, `{"x": "1`, `{"x": true, "y": 10}`, `{"x": [10], "y": 10}`,
		`{"x": {"n": 10}, "y": 10}`, `{"x": null, "y": 10}`, `{"x": 10, "y": -1}`, `{"x": 1e999, "y": 1}`,
		`{"x": 10, "y": 10}` + strings.Repeat(" ", 70_000), "\x00\x01\x02", `{"x": 10, "y": 10, "x": 11}` + `{`,
		`"{\"x\": 1, \"y\": 1}"`, `{"x": ` + strings.Repeat("[", 10_000) + `}`,
	}
	for _, body := range bodies {
		code, answer := 0, map[string]any{}
		req, _ := http.NewRequest(http.MethodPost, g.url+"/function/run", bytes.NewReader([]byte(body)))
		res, err := g.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		code = res.StatusCode
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		_ = json.Unmarshal(b, &answer)
		if msg, _ := answer["error"].(string); code < 400 || code > 499 || msg == "" {
			t.Errorf("run with %.50q answered %d %s, want 4xx with an error", body, code, b)
		}
	}
	// Oversized bodies are refused with 400 and {"error"}: over the run
	// request's 64 KiB by run itself, over 1 MiB by the watchdog before
	// the body is read into memory.
	for _, size := range []int{1 << 20, 40 << 20} {
		res, err := g.http.Post(g.url+"/function/run", "application/json", bytes.NewReader(bytes.Repeat([]byte("9"), size)))
		if err != nil {
			t.Fatalf("run with a %d-byte body: %v", size, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var answer map[string]any
		_ = json.Unmarshal(b, &answer)
		if msg, _ := answer["error"].(string); res.StatusCode != http.StatusBadRequest || msg == "" {
			t.Errorf("run with a %d-byte body answered %d %.80q, want 400 with {\"error\"}", size, res.StatusCode, b)
		}
	}
	after := snapshot()
	if len(after) != len(before) {
		t.Fatalf("bad requests changed the keys in Redis: %d keys before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("bad requests changed %s", k)
		}
	}
}
