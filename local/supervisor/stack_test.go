package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openfaas/faas-provider/types"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExpand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"TAG": "v1", "EMPTY": "", "REGISTRY": "ghcr.io/me"}
	tests := []struct {
		in, want, wantErr string
	}{
		{"plain text", "plain text", ""},
		{"${REGISTRY:-ghcr.io/optio}/optio-run:${TAG:-dev}", "ghcr.io/me/optio-run:v1", ""},
		{"${UNSET:-ghcr.io/optio}/x:${UNSET2:-dev}", "ghcr.io/optio/x:dev", ""},
		{"${EMPTY:-fallback}", "fallback", ""},
		{"${EMPTY-fallback}", "", ""},
		{"${UNSET-fallback}", "fallback", ""},
		{"$TAG and ${TAG}", "v1 and v1", ""},
		{"${UNSET:-${TAG:-x}}", "v1", ""},
		{"cost $$5 and $ alone and $", "cost $5 and $ alone and $", ""},
		{"${UNSET}", "", ""},
		{"${TAG", "", "unterminated"},
		{"${1BAD}", "", "variable name"},
		{"${TAG:?required}", "", "only ${NAME}"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := expand(tc.in, lookupMap(vars))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error with %q, got %q, %v", tc.wantErr, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "a", "$", "$$", "${", "${A}", "${A:-b}", "${A-${B:-c}}", "x${A}y$B", "${A:-}", "}{$", "${${A}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := expand(s, lookupMap(map[string]string{"A": "1", "B": "22"}))
		if err == nil && !strings.Contains(s, "$") && got != s {
			t.Fatalf("text without $ changed: %q -> %q", s, got)
		}
	})
}

func TestReadStack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("env.yml", "environment:\n  FROM_FILE: yes\n  SHARED: file\n")
	path := write("stack.yml", `version: 1.0
provider: {name: openfaas, gateway: http://127.0.0.1:8080}
functions:
  schedule:
    lang: golang-http
    handler: ./functions/schedule
    image: ${REGISTRY:-ghcr.io/optio}/optio-schedule:${TAG:-dev}
    environment_file: [env.yml]
    environment: &env
      SHARED: stack
      QUEUE: ${OPTIO_QUEUE:-optio.jobs}
      write_timeout: 130s
      retries: 3
    annotations: {topic: cron-function, schedule: "* * * * *"}
    labels: {com.openfaas.scale.min: 1, com.openfaas.scale.max: "2"}
    secrets: [es-password]
    limits: {memory: 128Mi}
    requests: {cpu: 100m}
  process:
    image: optio-process
    environment: *env
`)
	deps, err := readStack(path, lookupMap(map[string]string{"OPTIO_QUEUE": "e2e.q"}), map[string]string{"OPTIO_PREFIX": "e2e:"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHARED": "stack", "QUEUE": "e2e.q", "write_timeout": "130s", "retries": "3", "OPTIO_PREFIX": "e2e:"}
	schedEnv := map[string]string{"FROM_FILE": "yes"}
	for k, v := range env {
		schedEnv[k] = v
	}
	want := []types.FunctionDeployment{
		{Service: "process", Image: "optio-process", EnvVars: env},
		{
			Service: "schedule", Image: "ghcr.io/optio/optio-schedule:dev", EnvVars: schedEnv,
			Annotations: &map[string]string{"topic": "cron-function", "schedule": "* * * * *"},
			Labels:      &map[string]string{"com.openfaas.scale.min": "1", "com.openfaas.scale.max": "2"},
			Secrets:     []string{"es-password"},
			Limits:      &types.FunctionResources{Memory: "128Mi"},
			Requests:    &types.FunctionResources{CPU: "100m"},
		},
	}
	if diff := cmp.Diff(want, deps); diff != "" {
		t.Errorf("deployments (-want +got):\n%s", diff)
	}

	for name, text := range map[string]string{
		"no functions": "provider: {name: openfaas}\n",
		"no image":     "functions:\n  a: {lang: go}\n",
		"bad yaml":     "functions: [\n",
		"bad variable": "functions:\n  a: {image: ${X}\n",
	} {
		if _, err := readStack(write("bad.yml", text), lookupMap(nil), nil); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestReadConfigPassesEnvOn(t *testing.T) {
	t.Parallel()
	cfg, err := ReadConfig([]string{"OPTIO_PREFIX=e2e:", "OPTIO_QUEUE=e2e.jobs", "OPTIO_BIN_DIR=/x/bin",
		"REDIS_URL=redis://h:1/0", "HOME=/root", "OPTIO_UP_TIMEOUT=5s"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"OPTIO_PREFIX": "e2e:", "OPTIO_QUEUE": "e2e.jobs", "REDIS_URL": "redis://h:1/0"}
	if diff := cmp.Diff(want, cfg.Env); diff != "" {
		t.Errorf("Env (-want +got):\n%s", diff)
	}
	if cfg.BinDir != "/x/bin" || cfg.StartTimeout.Seconds() != 5 {
		t.Errorf("config: %+v", cfg)
	}
	if _, err := ReadConfig([]string{"OPTIO_UP_TIMEOUT=soon"}); err == nil || !strings.Contains(err.Error(), "OPTIO_UP_TIMEOUT") {
		t.Errorf("bad timeout: want an error naming OPTIO_UP_TIMEOUT, got %v", err)
	}
}
