package esstore

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, StoreOptions{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func newServer(t testing.TB) (*httptest.Server, *Store) {
	t.Helper()
	s := openStore(t, t.TempDir())
	h, err := NewHandler(s, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv, s
}

// call sends one request and decodes the JSON answer (nil for no body).
func call(t testing.TB, srv *httptest.Server, method, path, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode, res.Header, out
}

// field digs a dotted path out of a decoded answer ("error.type",
// "items.0.create.status").
func field(v any, path string) any {
	for _, p := range splitDots(path) {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

const jobsMapping = `{"mappings":{"dynamic":"strict","properties":{"runId":{"type":"keyword"},"jobId":{"type":"long"},"processedAt":{"type":"date"},"attempt":{"type":"integer"},"durationMs":{"type":"float"}}}}`
