package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinaries builds what the stack runs into a fresh directory: the
// provider and optio-noop from this workspace, and the gateway (bin/gateway
// when it exists, a fresh build otherwise).
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "optio.dev/local/cmd/optio-provider", "optio.dev/local/cmd/optio-noop")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the provider: %v\n%s", err, b)
	}
	if gw, err := filepath.Abs("../../bin/gateway"); err == nil {
		if _, err := os.Stat(gw); err == nil {
			if err := os.Symlink(gw, filepath.Join(dir, "gateway")); err != nil {
				t.Fatal(err)
			}
			return dir
		}
	}
	cmd = exec.Command("go", "build", "-o", filepath.Join(dir, "gateway"), "github.com/openfaas/faas/gateway")
	cmd.Dir = "../gateway"
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the gateway: %v\n%s", err, b)
	}
	return dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestStartDeployRestartStop(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		if _, err := os.Stat("/usr/bin/prometheus"); err != nil {
			t.Fatal("prometheus is required by the stack and is not installed: run scripts/services.sh or apt-get install prometheus")
		}
	}
	bin := buildBinaries(t)
	state := t.TempDir()
	stackFile := filepath.Join(state, "stack.yml")
	if err := os.WriteFile(stackFile, []byte(`provider: {name: openfaas, gateway: http://127.0.0.1:8080}
functions:
  noop:
    image: ${REGISTRY:-ghcr.io/optio}/optio-noop:${TAG:-dev}
    environment: {GREETING: "${GREETING:-hi}"}
    secrets: [es-password]
    labels: {com.openfaas.scale.min: "2"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		BinDir:         bin,
		StateDir:       state,
		StackFile:      stackFile,
		ServicesScript: "../../scripts/services.sh",
		ESURL:          "http://127.0.0.1:9200",
		Env:            map[string]string{"OPTIO_PREFIX": "sup-test:", "ES_PASSWORD": "pw"},
		StartTimeout:   60 * time.Second,
		LockWait:       3 * time.Minute,
		Output:         testWriter{t},
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			st.Stop()
		}
	}()

	call := func() (int, string) {
		res, err := http.Get(st.GatewayURL() + "/function/noop")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := call(); code != http.StatusOK || body != "ok" {
		t.Fatalf("invoke noop: %d %q", code, body)
	}
	// The gateway's /system API needs the generated credentials, kept in
	// files only the owner can read.
	creds := st.Credentials()
	for _, name := range []string{"basic-auth-user", "basic-auth-password"} {
		if fi, err := os.Stat(filepath.Join(creds.Dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("credentials file %s: %v, mode %v; want 0600", name, err, fi)
		}
	}
	system := func(user, password string) int {
		req, _ := http.NewRequest(http.MethodGet, st.GatewayURL()+"/system/functions", nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := system("", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /system/functions without credentials answered %d, want 401", code)
	}
	if code := system(creds.User, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("GET /system/functions with a wrong password answered %d, want 401", code)
	}
	if code := system(creds.User, creds.Password); code != http.StatusOK {
		t.Errorf("GET /system/functions with the credentials answered %d, want 200", code)
	}
	secret, err := os.ReadFile(filepath.Join(state, "provider", "functions", "noop", "secrets", "es-password"))
	if err != nil || string(secret) != "pw" {
		t.Errorf("secret es-password = %q, %v; want it created from ES_PASSWORD", secret, err)
	}

	// A provider that dies is started again and the functions redeployed.
	replicaPIDs := func() []int {
		res, err := http.Get(ProviderURL + "/local/replicas/noop")
		if err != nil {
			return nil
		}
		defer res.Body.Close()
		var rs []struct{ PID int }
		_ = json.NewDecoder(res.Body).Decode(&rs)
		var pids []int
		for _, r := range rs {
			if r.PID != 0 {
				pids = append(pids, r.PID)
			}
		}
		return pids
	}
	oldReplicas := replicaPIDs()
	if len(oldReplicas) != 2 {
		t.Fatalf("want 2 replicas of noop (scale.min label), got %v", oldReplicas)
	}
	oldProvider := st.PID("provider")
	if err := syscall.Kill(oldProvider, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		if p := st.PID("provider"); p == 0 || p == oldProvider {
			return fmt.Errorf("provider not restarted")
		}
		if code, body := call(); code != http.StatusOK {
			return fmt.Errorf("invoke after provider restart: %d %s", code, body)
		}
		return nil
	})
	for _, p := range oldReplicas {
		waitGone(t, p) // the kernel ended them with their provider
	}

	pids := replicaPIDs()
	for _, c := range []string{"prometheus", "provider", "gateway", "alertmanager"} {
		if p := st.PID(c); p != 0 {
			pids = append(pids, p)
		} else {
			t.Errorf("%s does not run", c)
		}
	}
	st.Stop()
	stopped = true
	for _, p := range pids {
		if syscall.Kill(p, 0) == nil {
			t.Errorf("process %d still runs after Stop", p)
		}
	}
	if err := checkPorts([]int{8080, 8081, 8082, 9090, 9093}); err != nil {
		t.Errorf("after Stop: %v", err)
	}
}

func TestCheckPortsNamesMakeUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	err = checkPorts([]int{port})
	if err == nil || !strings.Contains(err.Error(), "stop `make up` first") || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("want an error naming port %d and `make up`, got %v", port, err)
	}
}

func TestStartFailsWhileAnotherStackRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	unlock, err := LockGateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Start(ctx, Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "stop `make up` first") {
		t.Fatalf("want an error telling to stop `make up` first, got %v", err)
	}
}

func eventually(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	})
}
