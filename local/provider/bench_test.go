package provider

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func newBenchServer(rt *Runtime) *httptest.Server {
	return httptest.NewServer(Router(Handlers(rt), rt))
}

// BenchmarkProxy measures calls through the provider's proxy to two replicas
// of the test function, over keep-alive connections.
func BenchmarkProxy(b *testing.B) {
	cfg := Config{
		Addr: "127.0.0.1:0", BinDir: binDir, StateDir: b.TempDir(), StartTimeout: 30e9, StopGrace: 5e9, DrainTimeout: 5e9,
		ReadyWait: 5e9, MaxReplicas: 4, ReadTimeout: 60e9, WriteTimeout: 60e9, MaxIdleConnsPerHost: 256, RestartBackoff: 50e6, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	rt, err := NewRuntime(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	dep := testDeployment("bench", map[string]string{MinScaleLabel: "2"})
	if err := rt.Deploy(dep); err != nil {
		b.Fatal(err)
	}
	for {
		if st, _ := rt.Status("bench"); st.AvailableReplicas == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv := newBenchServer(rt)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(srv.URL + "/function/bench")
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}
