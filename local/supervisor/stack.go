package supervisor

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/openfaas/faas-provider/types"
	"gopkg.in/yaml.v3"
)

// stackFile is the part of an OpenFaaS stack.yml that deploying reads.
type stackFile struct {
	Provider struct {
		Name    string `yaml:"name"`
		Gateway string `yaml:"gateway"`
	} `yaml:"provider"`
	Functions map[string]stackFunction `yaml:"functions"`
}

type stackFunction struct {
	Lang                   string            `yaml:"lang"`
	Handler                string            `yaml:"handler"`
	Image                  string            `yaml:"image"`
	FProcess               string            `yaml:"fprocess"`
	Namespace              string            `yaml:"namespace"`
	Environment            map[string]string `yaml:"environment"`
	EnvironmentFile        []string          `yaml:"environment_file"`
	Secrets                []string          `yaml:"secrets"`
	Labels                 map[string]string `yaml:"labels"`
	Annotations            map[string]string `yaml:"annotations"`
	Constraints            []string          `yaml:"constraints"`
	Limits                 *stackResources   `yaml:"limits"`
	Requests               *stackResources   `yaml:"requests"`
	ReadOnlyRootFilesystem bool              `yaml:"readonly_root_filesystem"`
}

type stackResources struct {
	Memory string `yaml:"memory"`
	CPU    string `yaml:"cpu"`
}

// envFile is a file named by environment_file.
type envFile struct {
	Environment map[string]string `yaml:"environment"`
}

// readStack reads a stack file and returns its functions as the deployment
// requests faas-cli deploy sends, sorted by name. Variables are substituted
// in the whole text first; extra is laid over every function's environment.
func readStack(path string, lookup func(string) (string, bool), extra map[string]string) ([]types.FunctionDeployment, error) {
	var st stackFile
	if err := readYAML(path, lookup, &st); err != nil {
		return nil, err
	}
	if len(st.Functions) == 0 {
		return nil, fmt.Errorf("stack file %s has no functions", path)
	}
	var out []types.FunctionDeployment
	for _, name := range slices.Sorted(maps.Keys(st.Functions)) {
		fn := st.Functions[name]
		if fn.Image == "" {
			return nil, fmt.Errorf("stack file %s: function %s has no image", path, name)
		}
		env := map[string]string{}
		for _, f := range fn.EnvironmentFile {
			var ef envFile
			if err := readYAML(filepath.Join(filepath.Dir(path), f), lookup, &ef); err != nil {
				return nil, fmt.Errorf("function %s: environment_file: %w", name, err)
			}
			maps.Copy(env, ef.Environment)
		}
		maps.Copy(env, fn.Environment)
		maps.Copy(env, extra)
		dep := types.FunctionDeployment{
			Service:                name,
			Image:                  fn.Image,
			Namespace:              fn.Namespace,
			EnvProcess:             fn.FProcess,
			EnvVars:                env,
			Constraints:            fn.Constraints,
			Secrets:                fn.Secrets,
			ReadOnlyRootFilesystem: fn.ReadOnlyRootFilesystem,
		}
		if fn.Labels != nil {
			dep.Labels = &fn.Labels
		}
		if fn.Annotations != nil {
			dep.Annotations = &fn.Annotations
		}
		if fn.Limits != nil {
			dep.Limits = &types.FunctionResources{Memory: fn.Limits.Memory, CPU: fn.Limits.CPU}
		}
		if fn.Requests != nil {
			dep.Requests = &types.FunctionResources{Memory: fn.Requests.Memory, CPU: fn.Requests.CPU}
		}
		out = append(out, dep)
	}
	return out, nil
}

func readYAML(path string, lookup func(string) (string, bool), v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading stack file: %w", err)
	}
	text, err := expand(string(raw), lookup)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := yaml.Unmarshal([]byte(text), v); err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	return nil
}
