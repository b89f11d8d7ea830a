package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"optio.dev/local/supervisor"
)

// TestThroughRealGateway drives deploy, invoke, scale and delete through the
// real OpenFaaS gateway in front of this provider, with Prometheus, which the
// gateway needs to list functions.
func TestThroughRealGateway(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is required by the gateway's GET /system/functions and is not installed: run scripts/services.sh or apt-get install prometheus (%v)", err)
	}
	gateway := gatewayBinary(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	unlock, err := supervisor.LockGateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, port := range []string{"8080", "8082"} {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			t.Fatalf("port %s is taken: stop `make up` first", port)
		}
	}

	h := newHarness(t, testConfig(t))
	promPort := freeTestPort(t)
	dir := t.TempDir()
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global: {scrape_interval: 5s}
scrape_configs:
  - job_name: gateway
    static_configs: [{targets: ["127.0.0.1:8082"]}]
  - job_name: provider
    static_configs: [{targets: [%q]}]
`, h.srv.Listener.Addr().String())), 0o644); err != nil {
		t.Fatal(err)
	}
	startChild(t, dir, nil, prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(promPort))
	startChild(t, dir, []string{
		"functions_provider_url=" + h.srv.URL + "/",
		"faas_prometheus_host=127.0.0.1",
		"faas_prometheus_port=" + strconv.Itoa(promPort),
		"read_timeout=130s", "write_timeout=130s", "upstream_timeout=130s",
		"function_namespace=" + Namespace,
	}, gateway)

	gw := "http://127.0.0.1:8080"
	waitHTTP(t, gw+"/healthz")
	waitHTTP(t, "http://127.0.0.1:"+strconv.Itoa(promPort)+"/-/ready")

	dep := testDeployment("viagw", map[string]string{MinScaleLabel: "1", MaxScaleLabel: "4", "com.openfaas.scale.factor": "50"})
	dep.Annotations = &map[string]string{"topic": "cron-function", "schedule": "* * * * *"}
	if code, body := doJSON(t, gw, http.MethodPost, "/system/functions", dep); code/100 != 2 {
		t.Fatalf("deploy through gateway: %d %s", code, body)
	}
	if code, body := doJSON(t, gw, http.MethodPut, "/system/functions", dep); code/100 != 2 {
		t.Fatalf("update through gateway: %d %s", code, body)
	}
	eventually(t, time.Minute, func() error {
		code, body := doJSON(t, gw, http.MethodGet, "/function/viagw?env=OPTIO_TEST_FUNCTION", nil)
		if code != http.StatusOK {
			return fmt.Errorf("invoke: %d %s", code, body)
		}
		return nil
	})

	// connector-sdk calls functions as NAME.NAMESPACE.
	if code, body := doJSON(t, gw, http.MethodGet, "/function/viagw."+Namespace, nil); code != http.StatusOK {
		t.Fatalf("invoke with namespace: %d %s", code, body)
	}

	code, body := doJSON(t, gw, http.MethodGet, "/system/functions", nil)
	var list []types.FunctionStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 ||
		list[0].Name != "viagw" || (*list[0].Annotations)["topic"] != "cron-function" {
		t.Fatalf("list through gateway: %d %s", code, body)
	}

	if code, body := doJSON(t, gw, http.MethodPost, "/system/scale-function/viagw", types.ScaleServiceRequest{ServiceName: "viagw", Replicas: 3}); code/100 != 2 {
		t.Fatalf("scale through gateway: %d %s", code, body)
	}
	eventually(t, time.Minute, func() error {
		var st types.FunctionStatus
		code, body := doJSON(t, gw, http.MethodGet, "/system/function/viagw", nil)
		if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.AvailableReplicas != 3 {
			return fmt.Errorf("status through gateway: %d %s", code, body)
		}
		return nil
	})
	pids := map[int]bool{}
	for range 6 {
		code, a := callVia(t, gw, "viagw")
		if code != http.StatusOK {
			t.Fatalf("invoke after scale: %d", code)
		}
		pids[a.PID] = true
	}
	if len(pids) != 3 {
		t.Errorf("6 calls reached %d replicas, want 3", len(pids))
	}

	// Asked for more than the max label: the provider stops at 4.
	scaleVia(t, gw, "viagw", 9)
	for _, r := range waitReplicasVia(t, gw, h, "viagw", 4) {
		pids[r.PID] = true
	}
	drainVia(t, gw, h)

	// The alert path: the gateway adds ceil(max*factor/100) = 2 replicas per
	// firing alert up to max, and sets min on a resolved one.
	for _, step := range []struct {
		status string
		want   uint64
	}{{"firing", 3}, {"firing", 4}, {"resolved", 1}} {
		alert := fmt.Sprintf(`{"status": %q, "receiver": "scale-up", "alerts": [{"status": %q,
			"labels": {"alertname": "APIHighInvocationRate", "function_name": "viagw.%s", "service": "gateway"}}]}`,
			step.status, step.status, Namespace)
		res, err := http.Post(gw+"/system/alert", "application/json", strings.NewReader(alert))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("alert %s: %d", step.status, res.StatusCode)
		}
		for _, r := range waitReplicasVia(t, gw, h, "viagw", step.want) {
			pids[r.PID] = true
		}
	}

	if code, body := doJSON(t, gw, http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "viagw"}); code/100 != 2 {
		t.Fatalf("delete through gateway: %d %s", code, body)
	}
	if code, _ := doJSON(t, gw, http.MethodGet, "/function/viagw", nil); code != http.StatusNotFound {
		t.Errorf("invoke after delete: want 404, got %d", code)
	}
	for p := range pids {
		waitGone(t, p)
	}
}

// drainVia puts one blocked call on each of 4 replicas, scales down to 1
// through the gateway, and checks that new calls go to the kept replica
// only, that the removed ones live until their calls finish, and that every
// blocked call is answered.
func drainVia(t *testing.T, gw string, h *harness) {
	t.Helper()
	release := filepath.Join(t.TempDir(), "release")
	answers := make(chan int, 4)
	for range 4 {
		go func() {
			code, _ := doJSON(t, gw, http.MethodGet, "/function/viagw?wait="+release, nil)
			answers <- code
		}()
	}
	eventually(t, 30*time.Second, func() error {
		for _, r := range h.replicas("viagw") {
			if r.InFlight != 1 {
				return fmt.Errorf("want one call in flight on each replica: %+v", h.replicas("viagw"))
			}
		}
		return nil
	})
	before := h.replicas("viagw")
	scaleVia(t, gw, "viagw", 1)
	after := h.replicas("viagw")
	if len(after) != 1 {
		t.Fatalf("want 1 replica after scaling down, have %+v", after)
	}
	for range 3 {
		if code, a := callVia(t, gw, "viagw"); code != http.StatusOK || a.PID != after[0].PID {
			t.Fatalf("call during the drain reached %d (code %d), want the kept replica %d", a.PID, code, after[0].PID)
		}
	}
	var removed []int
	for _, r := range before {
		if r.PID != after[0].PID {
			removed = append(removed, r.PID)
			if !alive(r.PID) {
				t.Fatalf("removed replica %d stopped before its call finished", r.PID)
			}
		}
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if code := <-answers; code != http.StatusOK {
			t.Errorf("a call in flight during the scale-down answered %d, want 200", code)
		}
	}
	waitGone(t, removed...)
}

func scaleVia(t *testing.T, gw, name string, n uint64) {
	t.Helper()
	if code, body := doJSON(t, gw, http.MethodPost, "/system/scale-function/"+name, types.ScaleServiceRequest{ServiceName: name, Replicas: n}); code/100 != 2 {
		t.Fatalf("scale %s to %d through the gateway: %d %s", name, n, code, body)
	}
}

// waitReplicasVia waits until the gateway reports n replicas, all available.
func waitReplicasVia(t *testing.T, gw string, h *harness, name string, n uint64) []ReplicaInfo {
	t.Helper()
	eventually(t, time.Minute, func() error {
		var st types.FunctionStatus
		code, body := doJSON(t, gw, http.MethodGet, "/system/function/"+name, nil)
		if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Replicas != n || st.AvailableReplicas != n {
			return fmt.Errorf("want %d replicas of %s, gateway says: %d %s", n, name, code, body)
		}
		return nil
	})
	return h.replicas(name)
}

func callVia(t *testing.T, base, name string) (int, testAnswer) {
	code, body := doJSON(t, base, http.MethodGet, "/function/"+name, nil)
	var a testAnswer
	if code == http.StatusOK {
		_ = json.Unmarshal([]byte(body), &a)
	}
	return code, a
}

// gatewayBinary is bin/gateway when it exists, otherwise a fresh build.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../bin/gateway"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	out := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-o", out, "github.com/openfaas/faas/gateway")
	cmd.Dir = "../gateway"
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the gateway: %v\n%s", err, b)
	}
	return out
}

// startChild runs a process for the test and stops it (SIGTERM, then
// SIGKILL) when the test ends.
func startChild(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s:\n%s", filepath.Base(name), b)
		}
	})
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	eventually(t, time.Minute, func() error {
		res, err := http.Get(url)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d", url, res.StatusCode)
		}
		return nil
	})
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
