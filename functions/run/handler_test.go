package function

import (
	"encoding/json"
	"net/http"
	"testing"

	handler "github.com/openfaas/templates-sdk/go-http"
)

// These tests need no server: the golang-http template runs them while it
// builds the image. Bad input is refused before Redis is touched.
func TestRefusesBadInput(t *testing.T) {
	for _, tt := range []struct {
		name, method, body string
		status             int
	}{
		{"wrong method", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"empty body", http.MethodPost, "", http.StatusBadRequest},
		{"out of range", http.MethodPost, `{"x": 0, "y": 1}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, `{"x": 1, "y": 1, "z": 1}`, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := Handle(handler.Request{Method: tt.method, Body: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]string
			if resp.StatusCode != tt.status || json.Unmarshal(resp.Body, &body) != nil || body["error"] == "" {
				t.Fatalf("answered %d %s; want %d with an error", resp.StatusCode, resp.Body, tt.status)
			}
		})
	}
}
