package watchdog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/templates-sdk/go-http"
	"optio.dev/optio/config"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() Config {
	return Config{Addr: "127.0.0.1:0", ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ExecTimeout: 5 * time.Second, MaxBodyBytes: 1 << 20, Logger: quiet()}
}

func TestHandlerMapsRequestAndResponse(t *testing.T) {
	t.Parallel()
	var got handler.Request
	var hadDeadline bool
	h := testConfig().Handler(func(req handler.Request) (handler.Response, error) {
		got = req
		_, hadDeadline = req.Context().Deadline()
		return handler.Response{StatusCode: http.StatusCreated, Body: []byte(`{"ok":true}`),
			Header: http.Header{"Content-Type": {"application/json"}, "X-Run": {"r-1"}}}, nil
	})
	req := httptest.NewRequest(http.MethodPost, "http://fn.local/some/path?x=1&y=2", strings.NewReader("hello"))
	req.Header.Set("X-Call-Id", "abc")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	if rec.Code != http.StatusCreated || rec.Body.String() != `{"ok":true}` ||
		rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Run") != "r-1" {
		t.Errorf("response: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
	want := struct{ Body, Query, Method, Host, CallID string }{"hello", "x=1&y=2", "POST", "fn.local", "abc"}
	have := struct{ Body, Query, Method, Host, CallID string }{string(got.Body), got.QueryString, got.Method, got.Host, got.Header.Get("X-Call-Id")}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if !hadDeadline {
		t.Error("handler context has no deadline although exec_timeout is set")
	}
}

func TestHandlerStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		res      handler.Response
		err      error
		panics   bool
		wantCode int
		wantBody string
	}{
		{"default 200", handler.Response{Body: []byte("x")}, nil, false, 200, "x"},
		{"explicit 400", handler.Response{StatusCode: 400, Body: []byte(`{"error":"bad"}`)}, nil, false, 400, `{"error":"bad"}`},
		{"error is 500 with its text", handler.Response{}, errors.New("boom"), false, 500, "boom"},
		{"error keeps the body", handler.Response{Body: []byte("detail")}, errors.New("boom"), false, 500, "detail"},
		{"panic is 500", handler.Response{}, nil, true, 500, "function panicked: oops"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := testConfig().Handler(func(handler.Request) (handler.Response, error) {
				if tc.panics {
					panic("oops")
				}
				return tc.res, tc.err
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestHealthAndBigBodies(t *testing.T) {
	t.Parallel()
	calls := 0
	h := testConfig().Handler(func(req handler.Request) (handler.Response, error) {
		calls++
		return handler.Response{Body: []byte(strings.Repeat("k", len(req.Body)/1024))}, nil
	})
	tests := []struct {
		name     string
		req      *http.Request
		wantCode int
	}{
		{"health", httptest.NewRequest(http.MethodGet, "/_/health", nil), 200},
		{"body under the cap", httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(make([]byte, 512<<10))), 200},
		{"body over the cap", httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(make([]byte, 3<<20))), 400},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, tc.req)
		if rec.Code != tc.wantCode {
			t.Errorf("%s: got %d %q, want %d", tc.name, rec.Code, rec.Body.String(), tc.wantCode)
		}
		if tc.name == "body over the cap" {
			var body map[string]string
			if json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"] == "" || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s: answer %q is not {\"error\": ...} JSON", tc.name, rec.Body.String())
			}
		}
	}
	if calls != 1 {
		t.Errorf("handler called %d times, want 1 (health and a too big body must not reach it)", calls)
	}
}

func TestShutdownFinishesCallsInFlight(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- testConfig().ServeListener(ctx, ln, func(handler.Request) (handler.Response, error) {
			close(entered)
			<-release
			return handler.Response{Body: []byte("done")}, nil
		})
	}()
	answer := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answer <- string(b)
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned with a call in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-answer; got != "done" {
		t.Errorf("call in flight got %q, want done", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestReadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"defaults", nil, Config{Addr: ":8080", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ExecTimeout: 10 * time.Second, MaxBodyBytes: 1 << 20}, ""},
		{"of-watchdog values", map[string]string{"PORT": "9001", "read_timeout": "130s", "write_timeout": "130", "exec_timeout": "2m"},
			Config{Addr: ":9001", ReadTimeout: 130 * time.Second, WriteTimeout: 130 * time.Second, ExecTimeout: 2 * time.Minute, MaxBodyBytes: 1 << 20}, ""},
		{"bad timeout", map[string]string{"write_timeout": "soon"}, Config{}, "write_timeout"},
		{"bad port", map[string]string{"PORT": "a:b"}, Config{}, "PORT"},
		{"bad body cap", map[string]string{"OPTIO_WATCHDOG_MAX_BODY": "0"}, Config{}, "OPTIO_WATCHDOG_MAX_BODY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadConfig(config.Map(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error naming %s, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Logger = nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
