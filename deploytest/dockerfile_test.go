package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// pinnedImage is name:version, with an optional @sha256 digest; "latest"
// and floating tags without a patch version are not pinned.
var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+:v?[0-9]+\.[0-9]+\.[0-9]+[a-z0-9._-]*(@sha256:[0-9a-f]{64})?$`)

// TestDockerfiles parses each image's Dockerfile with BuildKit's own parser
// and checks: multi-stage, every base image pinned, the final stage runs as
// a non-root user and has a HEALTHCHECK, every COPY from the context names a
// file of the repository that the Dockerfile's .dockerignore lets through.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	root := RepoRoot()
	files, err := filepath.Glob(filepath.Join(root, "deploy", "docker", "*.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".Dockerfile"))
	}
	if want := []string{"connector", "relay", "runtime"}; !slices.Equal(names, want) {
		t.Fatalf("Dockerfiles %v, want %v", names, want)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			stages := parseDockerfile(t, path)
			if len(stages) < 2 {
				t.Errorf("%d stage(s); want a multi-stage build", len(stages))
			}
			named := map[string]bool{}
			for _, st := range stages {
				if !named[st.BaseName] && !pinnedImage.MatchString(st.BaseName) {
					t.Errorf("FROM %s is not pinned to a version", st.BaseName)
				}
				if st.Name != "" {
					named[st.Name] = true
				}
			}
			ignore := readIgnore(t, path+".dockerignore")
			for _, st := range stages {
				for _, cmd := range st.Commands {
					c, ok := cmd.(*instructions.CopyCommand)
					if !ok {
						continue
					}
					if c.From != "" {
						if !named[c.From] && !pinnedImage.MatchString(c.From) {
							t.Errorf("COPY --from=%s names neither an earlier stage nor a pinned image", c.From)
						}
						continue
					}
					for _, src := range c.SourcePaths {
						rel := filepath.Clean(src)
						if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
							t.Errorf("COPY %s: not in the repository (the build context is its root)", src)
						}
						if ignore.excludes(rel) {
							t.Errorf("COPY %s: excluded by %s", src, filepath.Base(path)+".dockerignore")
						}
					}
				}
			}
			final := stages[len(stages)-1]
			var user string
			var health bool
			for _, cmd := range final.Commands {
				switch c := cmd.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.HealthCheckCommand:
					health = c.Health != nil && len(c.Health.Test) > 0 && c.Health.Test[0] != "NONE"
				}
			}
			if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
				t.Errorf("final stage runs as %q; want a non-root USER", user)
			}
			if !health {
				t.Errorf("final stage has no HEALTHCHECK")
			}
		})
	}
}

// ignoreRules is a .dockerignore reduced to what these files use: patterns
// of whole top-level entries or "*", with "!" exceptions, last match wins.
type ignoreRules []struct {
	pattern string
	negate  bool
}

func readIgnore(t *testing.T, path string) ignoreRules {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("each Dockerfile has its own ignore file: %v", err)
	}
	var rules ignoreRules
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		rules = append(rules, struct {
			pattern string
			negate  bool
		}{strings.TrimSuffix(strings.TrimPrefix(line, "!"), "/"), neg})
	}
	return rules
}

func (r ignoreRules) excludes(rel string) bool {
	excluded := false
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	for _, rule := range r {
		match := rule.pattern == "*" || rule.pattern == first || rule.pattern == rel
		if strings.HasPrefix(rule.pattern, "**/") {
			ok, _ := filepath.Match(strings.TrimPrefix(rule.pattern, "**/"), filepath.Base(rel))
			match = ok
		}
		if match {
			excluded = !rule.negate
		}
	}
	return excluded
}

// TestRuntimeImageHasWhatTheSupervisorStarts: optio-up in the runtime image
// starts Prometheus and Alertmanager from OPTIO_PROMETHEUS_BIN and
// OPTIO_ALERTMANAGER_BIN, and the gateway, provider, esstore and the
// functions from OPTIO_BIN_DIR; a missing one stops the container, so each
// must be copied into the final stage at the path its variable names.
func TestRuntimeImageHasWhatTheSupervisorStarts(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, filepath.Join(RepoRoot(), "deploy", "docker", "runtime.Dockerfile"))
	final := stages[len(stages)-1]
	env := map[string]string{}
	var copied []string
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.CopyCommand:
			copied = append(copied, c.DestPath)
		}
	}
	for _, v := range []string{"OPTIO_PROMETHEUS_BIN", "OPTIO_ALERTMANAGER_BIN"} {
		if env[v] == "" {
			t.Errorf("ENV %s is not set in the final stage", v)
		} else if !slices.Contains(copied, env[v]) {
			t.Errorf("%s=%s, but no COPY writes that path (copied: %v)", v, env[v], copied)
		}
	}
	binDir := strings.TrimSuffix(env["OPTIO_BIN_DIR"], "/") + "/"
	if !slices.Contains(copied, binDir) {
		t.Errorf("OPTIO_BIN_DIR=%s is not a COPY destination (copied: %v)", env["OPTIO_BIN_DIR"], copied)
	}
	// The build stages must produce every binary the supervisor starts
	// from OPTIO_BIN_DIR.
	var runs strings.Builder
	for _, st := range stages[:len(stages)-1] {
		for _, cmd := range st.Commands {
			if r, ok := cmd.(*instructions.RunCommand); ok {
				runs.WriteString(strings.Join(r.CmdLine, " ") + "\n")
			}
		}
	}
	for _, bin := range []string{"/out/gateway", "optio-up", "optio-provider", "optio-esstore",
		"optio-run", "optio-stop", "optio-status", "optio-schedule", "optio-process"} {
		if !strings.Contains(runs.String(), bin) {
			t.Errorf("no build stage builds %s", bin)
		}
	}
}

// parseDockerfile parses path with BuildKit's own parser into its stages;
// a parser warning fails the test.
func parseDockerfile(t *testing.T, path string) []instructions.Stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", path, w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: instructions: %v", path, err)
	}
	return stages
}
