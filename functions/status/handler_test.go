package function

import (
	"encoding/json"
	"net/http"
	"testing"

	handler "github.com/openfaas/templates-sdk/go-http"
)

// This test needs no server: the golang-http template runs it while it
// builds the image.
func TestRefusesWrongMethod(t *testing.T) {
	resp, err := Handle(handler.Request{Method: http.MethodDelete})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	if resp.StatusCode != http.StatusMethodNotAllowed || json.Unmarshal(resp.Body, &body) != nil || body["error"] == "" {
		t.Fatalf("answered %d %s; want 405 with an error", resp.StatusCode, resp.Body)
	}
}
