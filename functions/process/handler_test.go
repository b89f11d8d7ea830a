package function

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/config"
)

// These tests need no server: the golang-http template runs them while it
// builds the image. A message that is not a job is refused before any store
// is touched.
func TestRefusesBadJobs(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"runId":"r","jobId":-1}`, `not json`} {
		resp, err := Handle(handler.Request{Method: http.MethodPost, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		var answer map[string]string
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(resp.Body, &answer) != nil || answer["error"] == "" {
			t.Fatalf("job %q answered %d %s; want 400 with an error", body, resp.StatusCode, resp.Body)
		}
	}
}

func TestReadConfig(t *testing.T) {
	c, err := readConfig(config.Map(map[string]string{"OPTIO_WORK_MS": "2.5", "OPTIO_FAIL_RATE": "0.1"}))
	if err != nil || c.WorkTime != 2500*time.Microsecond || c.FailRate != 0.1 {
		t.Fatalf("config = %+v, %v", c, err)
	}
	for key, value := range map[string]string{"OPTIO_WORK_MS": "-1", "OPTIO_FAIL_RATE": "2"} {
		if _, err := readConfig(config.Map(map[string]string{key: value})); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: err = %v, want one naming it", key, value, err)
		}
	}
}
