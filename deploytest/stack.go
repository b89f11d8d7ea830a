package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"gopkg.in/yaml.v3"
)

// Stack is the part of an OpenFaaS stack file faas-cli reads, field for
// field (github.com/openfaas/go-sdk/stack, type Services). Decoding it with
// known fields only catches a misspelt key that faas-cli would silently
// ignore.
type Stack struct {
	Version       string              `yaml:"version"`
	Provider      Provider            `yaml:"provider"`
	Functions     map[string]Function `yaml:"functions"`
	Configuration Configuration       `yaml:"configuration"`
	// Extensions are top-level keys faas-cli ignores; only "x-" keys, which
	// hold YAML anchors, are allowed.
	Extensions map[string]any `yaml:",inline"`
}

// Provider names the OpenFaaS provider and gateway.
type Provider struct {
	Name    string `yaml:"name"`
	Gateway string `yaml:"gateway"`
}

// Configuration is the stack-wide part: templates to fetch and paths copied
// into every build context.
type Configuration struct {
	Templates []Template `yaml:"templates"`
	Copy      []string   `yaml:"copy"`
}

// Template is where faas-cli fetches a language template from.
type Template struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
}

// Function is one function of the stack.
type Function struct {
	Lang                   string            `yaml:"lang"`
	Handler                string            `yaml:"handler"`
	Image                  string            `yaml:"image"`
	FProcess               string            `yaml:"fprocess"`
	Environment            map[string]string `yaml:"environment"`
	Secrets                []string          `yaml:"secrets"`
	SkipBuild              bool              `yaml:"skip_build"`
	Constraints            []string          `yaml:"constraints"`
	EnvironmentFile        []string          `yaml:"environment_file"`
	Labels                 map[string]string `yaml:"labels"`
	Limits                 *Resources        `yaml:"limits"`
	Requests               *Resources        `yaml:"requests"`
	ReadOnlyRootFilesystem bool              `yaml:"readonly_root_filesystem"`
	BuildOptions           []string          `yaml:"build_options"`
	Annotations            map[string]string `yaml:"annotations"`
	Namespace              string            `yaml:"namespace"`
	BuildArgs              map[string]string `yaml:"build_args"`
	Platforms              string            `yaml:"platforms"`
	BuildSecrets           map[string]string `yaml:"build_secrets"`
}

// Resources are a function's memory and CPU requests or limits.
type Resources struct {
	Memory string `yaml:"memory"`
	CPU    string `yaml:"cpu"`
}

// RepoRoot is the repository this module sits in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// LoadStack reads a stack file as faas-cli does: variables substituted in the
// whole text first (with lookup; unset ones take their ${VAR:-default}),
// then YAML. Top-level keys starting with "x-" only hold YAML anchors; any
// other unknown key is an error.
func LoadStack(path string, lookup func(string) (string, bool)) (*Stack, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading stack file: %w", err)
	}
	text, err := Expand(string(raw), lookup)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	var st Stack
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	for k := range st.Extensions {
		if !strings.HasPrefix(k, "x-") {
			return nil, fmt.Errorf("%s: unknown top-level key %q (faas-cli would ignore it)", path, k)
		}
	}
	return &st, nil
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}$]*))?\}`)

// Expand substitutes ${NAME} and ${NAME:-default} (default when unset or
// empty), the forms stack.yml uses. Any other use of "$" is an error, so the
// file stays within what both faas-cli and optio-up understand.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	out := varRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRE.FindStringSubmatch(m)
		if v, ok := lookup(sub[1]); ok && v != "" {
			return v
		}
		return sub[3]
	})
	if i := strings.Index(out, "$"); i >= 0 {
		end := min(len(out), i+40)
		return "", fmt.Errorf("unsupported variable syntax near %q", out[i:end])
	}
	return out, nil
}

// NoEnv is a lookup in an empty environment: every variable takes its default.
func NoEnv(string) (string, bool) { return "", false }
