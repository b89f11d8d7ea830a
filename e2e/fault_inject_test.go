package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"

	"optio.dev/local/supervisor"
	"optio.dev/optio/queue"
)

// The ways the fault suite hurts the stack: signals to processes, the
// RabbitMQ and Redis of the machine, the store's fault injection, and
// redeploying process with other settings.

type replicaInfo struct {
	PID   int  `json:"pid"`
	Ready bool `json:"ready"`
}

// replicas lists the replicas of a function from the local provider.
func replicas(t *testing.T, fn string) []replicaInfo {
	t.Helper()
	var out []replicaInfo
	if code := providerCall(t, http.MethodGet, "/local/replicas/"+fn, nil, &out); code != http.StatusOK {
		t.Fatalf("replicas of %s: provider answered %d", fn, code)
	}
	return out
}

func providerCall(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, supervisor.ProviderURL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s answered %q: %v", method, path, b, err)
		}
	}
	return res.StatusCode
}

// killReplicas sends SIGKILL to the replicas of fn (all, or only the first)
// and returns the pids killed.
func killReplicas(t *testing.T, fn string, all bool) []int {
	t.Helper()
	var killed []int
	for _, r := range replicas(t, fn) {
		if r.PID == 0 {
			continue
		}
		if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d (%s): %v", r.PID, fn, err)
		}
		killed = append(killed, r.PID)
		if !all {
			break
		}
	}
	if len(killed) == 0 {
		t.Fatalf("%s has no replica with a pid to kill", fn)
	}
	t.Logf("kill -9 %s replicas %v", fn, killed)
	return killed
}

// waitReplicasBack waits until fn has a ready replica none of whose pids
// is in old: the provider started it again.
func waitReplicasBack(t *testing.T, fn string, old []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		fresh := 0
		for _, r := range replicas(t, fn) {
			if r.Ready && r.PID != 0 && !contains(old, r.PID) {
				fresh++
			}
		}
		if fresh > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s has no new ready replica 30 s after its replicas %v were killed", fn, old)
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// signalComponent sends sig to a component of the stack (connector,
// gateway, ...) and waits until the supervisor has started it again.
func signalComponent(t *testing.T, name string, sig syscall.Signal) {
	t.Helper()
	pid := stack.PID(name)
	if pid == 0 {
		t.Fatalf("%s does not run", name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%d %s (%d): %v", sig, name, pid, err)
	}
	t.Logf("sent %v to %s (pid %d)", sig, name, pid)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p := stack.PID(name); p != 0 && p != pid {
			t.Logf("supervisor started %s again (pid %d)", name, p)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the supervisor did not start %s again within 60 s of %v", name, sig)
}

// rabbitmqctl runs rabbitmqctl with args.
func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", args...)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
}

// brokerBack makes sure RabbitMQ's application runs again at the end of a
// test, whatever happened: other tests on this machine need it.
func brokerBack(t *testing.T) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "rabbitmqctl", "start_app")
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl start_app at cleanup: %v\n%s", err, out)
		}
		exec.CommandContext(ctx, "rabbitmqctl", "await_startup").Run()
	})
}

// storeFault injects a fault into the esstore (a test aid of the store)
// for the suite's index.
func storeFault(t *testing.T, f map[string]any) {
	t.Helper()
	f["index"] = stack.env["OPTIO_INDEX"]
	b, _ := json.Marshal(f)
	res, err := http.Post(supervisor.ESStoreURL+"/_optio/faults", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("inject store fault %s: %v", b, err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("inject store fault %s: answered %d", b, res.StatusCode)
	}
}

func clearStoreFaults(t *testing.T) {
	req, _ := http.NewRequest(http.MethodDelete, supervisor.ESStoreURL+"/_optio/faults?index="+stack.env["OPTIO_INDEX"], nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("clear store faults: %v", err)
		return
	}
	res.Body.Close()
}

// setProcessEnv redeploys process with env laid over its environment.
func setProcessEnv(t *testing.T, env map[string]string) { setFunctionEnv(t, "process", env) }

// setFunctionEnv redeploys fn with env laid over its environment, as
// `faas-cli deploy --env` would, waits for its new replica, and restores
// the old environment at the end of the test.
func setFunctionEnv(t *testing.T, fn string, env map[string]string) {
	t.Helper()
	var st types.FunctionStatus
	if code := providerCall(t, http.MethodGet, "/system/function/"+fn, nil, &st); code != http.StatusOK {
		t.Fatalf("read %s deployment: %d", fn, code)
	}
	deploy := func(vars map[string]string) {
		old := replicas(t, fn)
		var pids []int
		for _, r := range old {
			pids = append(pids, r.PID)
		}
		dep := types.FunctionDeployment{
			Service: st.Name, Image: st.Image, EnvProcess: st.EnvProcess, EnvVars: vars,
			Secrets: st.Secrets, Labels: st.Labels, Annotations: st.Annotations,
			Limits: st.Limits, Requests: st.Requests,
		}
		if code := providerCall(t, http.MethodPut, "/system/functions", dep, nil); code/100 != 2 {
			t.Fatalf("redeploy %s: %d", fn, code)
		}
		waitReplicasBack(t, fn, pids)
	}
	vars := maps.Clone(st.EnvVars)
	maps.Copy(vars, env)
	deploy(vars)
	t.Logf("%s redeployed with %v", fn, env)
	t.Cleanup(func() { deploy(st.EnvVars) })
}

// publishDuplicates publishes jobs first..last of run id again, as a
// broker redelivery or a republishing releaser would.
func publishDuplicates(t *testing.T, id string, first, last int64) {
	t.Helper()
	pub, err := queue.Dial(amqpURL(), topology())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	n, err := pub.Batch(context.Background(), int(last-first+1), func(i int) (queue.Job, bool) {
		return queue.Job{RunID: id, JobID: first + int64(i), ReleasedAt: time.Now().UTC()}, true
	})
	if err != nil || n != int(last-first+1) {
		t.Fatalf("publish duplicates: %d, %v", n, err)
	}
	t.Logf("published jobs %d..%d of %s a second time", first, last, id)
}

// restartRedis shuts Redis down without saving and starts it again with the
// command scripts/services.sh uses: every key is gone, as after a crash of a
// Redis without persistence.
func restartRedis(t *testing.T) {
	t.Helper()
	root, _ := os.Getwd()
	script := root + "/../scripts/services.sh"
	out, err := exec.Command("redis-cli", "-p", "6379", "shutdown", "nosave").CombinedOutput()
	t.Logf("redis-cli shutdown nosave: %v %s", err, bytes.TrimSpace(out))
	t.Cleanup(func() {
		// Whatever happened, leave Redis running for everybody else.
		if err := exec.Command("redis-cli", "-p", "6379", "ping").Run(); err != nil {
			exec.Command("bash", script).Run()
		}
	})
	if out, err := exec.Command("bash", script).CombinedOutput(); err != nil {
		t.Fatalf("start Redis again (%s): %v\n%s", script, err, out)
	}
	for range 100 {
		if exec.Command("redis-cli", "-p", "6379", "ping").Run() == nil {
			t.Logf("Redis restarted empty")
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("Redis did not come back")
}
