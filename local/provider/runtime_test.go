package provider

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/faas-provider/types"
)

func TestDeployListScaleDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig(t))

	if code, body := h.do(http.MethodPost, "/system/secrets", types.Secret{Name: "api-key", Value: "s3cret"}); code != http.StatusAccepted {
		t.Fatalf("create secret: %d %s", code, body)
	}
	dep := testDeployment("crud", map[string]string{MaxScaleLabel: "3", MinScaleLabel: "1"})
	dep.EnvVars["GREETING"] = "hello"
	dep.Secrets = []string{"api-key"}
	dep.Annotations = &map[string]string{"topic": "optio.jobs"}
	h.deploy(dep)
	h.waitReady("crud", 1)

	if code, a := h.call("crud", "env=GREETING"); code != http.StatusOK || a.Env != "hello" {
		t.Fatalf("env: %d %+v", code, a)
	}
	if code, a := h.call("crud", "secret=api-key"); code != http.StatusOK || a.Secret != "s3cret" {
		t.Fatalf("secret: %d %+v", code, a)
	}
	if code, _ := h.call("crud."+Namespace, ""); code != http.StatusOK {
		t.Fatalf("call with the namespace suffix: %d", code)
	}
	if code, _ := h.call("crud.other", ""); code != http.StatusNotFound {
		t.Fatalf("call in another namespace: want 404, got %d", code)
	}

	code, body := h.do(http.MethodGet, "/system/functions", nil)
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	var list []types.FunctionStatus
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("list: want 1 function, got %s", body)
	}
	got := list[0]
	want := types.FunctionStatus{
		Name: "crud", Image: testImage, Namespace: Namespace,
		EnvVars: dep.EnvVars, Secrets: dep.Secrets, Labels: dep.Labels, Annotations: dep.Annotations,
		Replicas: 1, AvailableReplicas: 1, CreatedAt: got.CreatedAt,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed function (-want +got):\n%s", diff)
	}

	tests := []struct {
		name      string
		replicas  uint64
		wantReady int
	}{
		{"up within max", 2, 2},
		{"above max label", 9, 3},
		{"below min label", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := h.do(http.MethodPost, "/system/scale-function/crud", types.ScaleServiceRequest{ServiceName: "crud", Replicas: tc.replicas}); code != http.StatusAccepted {
				t.Fatalf("scale: %d %s", code, body)
			}
			h.waitReady("crud", tc.wantReady)
			code, body := h.do(http.MethodGet, "/system/function/crud", nil)
			var st types.FunctionStatus
			if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Replicas != uint64(tc.wantReady) {
				t.Fatalf("status: %d %s", code, body)
			}
		})
	}

	pids := []int{}
	for _, r := range h.replicas("crud") {
		pids = append(pids, r.PID)
	}
	if code, body := h.do(http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "crud"}); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := h.call("crud", ""); code != http.StatusNotFound {
		t.Errorf("call after delete: want 404, got %d", code)
	}
	if code, _ := h.do(http.MethodDelete, "/system/functions", types.DeleteFunctionRequest{FunctionName: "crud"}); code != http.StatusNotFound {
		t.Errorf("second delete: want 404, got %d", code)
	}
	waitGone(t, pids...)
}

func TestDeployRejectsBadRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig(t))
	notExec := filepath.Join(binDir, "optio-notexec")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dep  types.FunctionDeployment
		want string
	}{
		{"unknown image", types.FunctionDeployment{Service: "a", Image: "ghcr.io/optio/optio-nothing:dev"}, "unknown image"},
		{"image not executable", types.FunctionDeployment{Service: "a", Image: "optio-notexec"}, "unknown image"},
		{"image with no name", types.FunctionDeployment{Service: "a", Image: "ghcr.io/optio/:dev"}, "unknown image"},
		{"bad name", types.FunctionDeployment{Service: "Bad_Name", Image: testImage}, "not a valid function name"},
		{"bad label", types.FunctionDeployment{Service: "a", Image: testImage, Labels: &map[string]string{MaxScaleLabel: "many"}}, "not a whole number"},
		{"missing secret", types.FunctionDeployment{Service: "a", Image: testImage, Secrets: []string{"nope"}}, `secret "nope" does not exist`},
		{"other namespace", types.FunctionDeployment{Service: "a", Image: testImage, Namespace: "prod"}, "namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := h.do(http.MethodPost, "/system/functions", tc.dep)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("want 400 with %q, got %d %q", tc.want, code, body)
			}
		})
	}
	if code, body := h.do(http.MethodPut, "/system/functions", testDeployment("absent", nil)); code != http.StatusNotFound {
		t.Errorf("update of a missing function: want 404, got %d %s", code, body)
	}
	if list := h.rt.List(); len(list) != 0 {
		t.Errorf("bad requests left functions: %+v", list)
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig(t))
	h.deploy(testDeployment("rr", map[string]string{MinScaleLabel: "3"}))
	h.waitReady("rr", 3)
	seen := map[int]int{}
	for range 9 {
		code, a := h.call("rr", "")
		if code != http.StatusOK {
			t.Fatalf("call: %d", code)
		}
		seen[a.PID]++
	}
	if len(seen) != 3 {
		t.Fatalf("want calls spread over 3 replicas, got %v", seen)
	}
	for pid, n := range seen {
		if n != 3 {
			t.Errorf("replica %d got %d of 9 calls, want 3: %v", pid, n, seen)
		}
	}
}

func TestKilledReplicaIsRestarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig(t))
	h.deploy(testDeployment("phoenix", nil))
	old := h.waitReady("phoenix", 1)[0].PID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, old)
	eventually(t, 60e9, func() error {
		rs := h.waitReady("phoenix", 1)
		if rs[0].PID == old || rs[0].Restarts < 1 {
			return errorf("replica not restarted yet: %+v", rs)
		}
		return nil
	})
	if code, a := h.call("phoenix", ""); code != http.StatusOK || a.PID == old {
		t.Fatalf("call after restart: %d %+v", code, a)
	}
}

func TestScaleDownDrains(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig(t))
	h.deploy(testDeployment("drain", nil))
	if code, body := h.do(http.MethodPost, "/system/scale-function/drain", types.ScaleServiceRequest{Replicas: 2}); code != http.StatusAccepted {
		t.Fatalf("scale: %d %s", code, body)
	}
	before := h.waitReady("drain", 2)

	// One blocked call on each replica.
	release := filepath.Join(t.TempDir(), "release")
	var wg sync.WaitGroup
	answers := make(chan testAnswer, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, a := h.call("drain", "wait="+release)
			if code != http.StatusOK {
				t.Errorf("blocked call: %d", code)
			}
			answers <- a
		}()
	}
	eventually(t, 30e9, func() error {
		for _, r := range h.replicas("drain") {
			if r.InFlight != 1 {
				return errorf("want one call in flight on each replica: %+v", h.replicas("drain"))
			}
		}
		return nil
	})

	if code, body := h.do(http.MethodPost, "/system/scale-function/drain", types.ScaleServiceRequest{Replicas: 1}); code != http.StatusAccepted {
		t.Fatalf("scale down: %d %s", code, body)
	}
	after := h.replicas("drain")
	if len(after) != 1 {
		t.Fatalf("want 1 replica after scale down, got %+v", after)
	}
	kept := after[0].PID
	removed := before[0].PID
	if removed == kept {
		removed = before[1].PID
	}
	for range 4 {
		if code, a := h.call("drain", ""); code != http.StatusOK || a.PID != kept {
			t.Fatalf("new call went to %+v (code %d), want replica %d only", a, code, kept)
		}
	}
	if !alive(removed) {
		t.Fatalf("removed replica %d stopped before its call finished", removed)
	}

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(answers)
	got := map[int]bool{}
	for a := range answers {
		got[a.PID] = true
	}
	if !got[removed] || !got[kept] {
		t.Errorf("blocked calls answered from %v, want both %d and %d", got, removed, kept)
	}
	waitGone(t, removed)
}

func TestUpdateReplacesReplicas(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig(t))
	dep := testDeployment("upd", nil)
	dep.EnvVars["VERSION"] = "1"
	h.deploy(dep)
	old := h.waitReady("upd", 1)[0].PID

	dep.EnvVars = map[string]string{"OPTIO_TEST_FUNCTION": "1", "VERSION": "2"}
	if code, body := h.do(http.MethodPut, "/system/functions", dep); code != http.StatusAccepted {
		t.Fatalf("update: %d %s", code, body)
	}
	if code, a := h.call("upd", "env=VERSION"); code != http.StatusOK || a.Env != "2" {
		t.Fatalf("call after update: %d %+v", code, a)
	}
	waitGone(t, old)
}

func TestCloseStopsEveryProcess(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.StopGrace = 300e6
	h := newHarness(t, cfg)
	stubborn := testDeployment("stubborn", map[string]string{MinScaleLabel: "2"})
	stubborn.EnvVars["OPTIO_TEST_IGNORE_TERM"] = "1"
	h.deploy(stubborn)
	h.deploy(testDeployment("polite", nil))
	var pids []int
	for _, name := range []string{"stubborn", "polite"} {
		for _, r := range h.waitReady(name, map[string]int{"stubborn": 2, "polite": 1}[name]) {
			pids = append(pids, r.PID)
		}
	}
	h.rt.Close()
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d still runs after Close", p)
		}
	}
	if code, _ := h.do(http.MethodPost, "/system/functions", testDeployment("late", nil)); code != http.StatusServiceUnavailable {
		t.Errorf("deploy after Close: want 503, got %d", code)
	}
}

func TestImageMapping(t *testing.T) {
	t.Parallel()
	rt := &Runtime{cfg: Config{BinDir: binDir}}
	tests := []struct{ image, want string }{
		{"ghcr.io/optio/optio-testfn:dev", "optio-testfn"},
		{"optio-testfn", "optio-testfn"},
		{"localhost:5000/x/optio-testfn:1.2@sha256:abc", "optio-testfn"},
		{"registry:5000/optio-testfn", "optio-testfn"},
	}
	for _, tc := range tests {
		got, err := rt.binaryFor(tc.image)
		if err != nil || got != filepath.Join(binDir, tc.want) {
			t.Errorf("binaryFor(%q) = %q, %v; want %s", tc.image, got, err, tc.want)
		}
	}
}
