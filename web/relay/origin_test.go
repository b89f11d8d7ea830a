package relay

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coder/websocket"
)

// FuzzOriginAllowed: the relay's own Origin check (used for /function/*
// and to count refusals) agrees with the WebSocket library's, for any
// Origin header.
func FuzzOriginAllowed(f *testing.F) {
	for _, seed := range []string{
		"", "http://127.0.0.1:8090", "http://localhost:8090", "HTTP://127.0.0.1:8090",
		"http://dash.example.com", "https://a.example.org", "http://a.example.org",
		"null", "http://evil.example.net", "file://", "http://127.0.0.1:8090/x", "http://[::1]:8090",
		"://", "http://%zz", "http://DASH.EXAMPLE.COM",
	} {
		f.Add(seed)
	}
	s := &Server{cfg: Config{AllowedOrigins: []string{"dash.example.com", "https://*.example.org"}}}
	f.Fuzz(func(t *testing.T, origin string) {
		r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8090/ws", nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		ours := s.originAllowed(r)
		// A recorder cannot be hijacked, so Accept fails after its origin
		// check: with 403 when the origin is refused, otherwise not.
		w := httptest.NewRecorder()
		_, _ = websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
		theirs := w.Code != http.StatusForbidden
		if ours != theirs {
			t.Fatalf("origin %q: relay allows %v, websocket library allows %v", origin, ours, theirs)
		}
	})
}
