package queue

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeJob(t *testing.T) {
	t.Parallel()
	ok := Job{RunID: "r-20261203-1a2b", JobID: 42, ReleasedAt: time.Date(2026, 12, 3, 19, 0, 0, 0, time.UTC)}
	got, err := DecodeJob(ok.Encode())
	if err != nil || got != ok {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	for _, body := range []string{
		``, `null`, `{}`, `{"runId":"r","jobId":-1}`, `{"runId":"","jobId":1}`, `{"runId":"a b","jobId":1}`,
		`{"runId":"r","jobId":"1"}`, `{"runId":"r","jobId":1,"extra":1}`, `{"runId":"r","jobId":1} x`,
		`{"runId":"` + strings.Repeat("r", 65) + `","jobId":1}`, `{"runId":"r","jobId":1.5}`,
		`{"runId":"r","jobId":1,"pad":"` + strings.Repeat("p", MaxJobBytes) + `"}`,
	} {
		if _, err := DecodeJob([]byte(body)); !errors.Is(err, ErrBadJob) {
			t.Errorf("DecodeJob(%.60q) err = %v, want ErrBadJob", body, err)
		}
	}
}

// FuzzDecodeJob: the decoder never panics, and what it accepts encodes back
// to a job it accepts again, unchanged.
func FuzzDecodeJob(f *testing.F) {
	f.Add([]byte(`{"runId":"r-1","jobId":3,"releasedAt":"2026-12-03T19:00:00Z"}`))
	f.Add([]byte(`{"runId":"r-1","jobId":-3}`))
	f.Add([]byte(`{"runId":1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		j, err := DecodeJob(body)
		if err != nil {
			if !errors.Is(err, ErrBadJob) {
				t.Fatalf("error %v does not wrap ErrBadJob", err)
			}
			return
		}
		again, err := DecodeJob(j.Encode())
		if err != nil || !again.ReleasedAt.Equal(j.ReleasedAt) || again.RunID != j.RunID || again.JobID != j.JobID {
			t.Fatalf("accepted %q but its encoding %s decodes to %+v, %v", body, j.Encode(), again, err)
		}
	})
}
