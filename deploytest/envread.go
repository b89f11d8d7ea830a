package deploytest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// EnvRead is one place where Go code reads an environment variable.
type EnvRead struct {
	// Key is the variable, e.g. REDIS_URL.
	Key string
	// Reader is the function called: Getenv, LookupEnv, str, Int, Float,
	// Duration, Timeout, Bool, Secret, or a Getenv value such as env.
	Reader string
	// Defaulted is true when the code has a value for an unset variable: a
	// default argument (str, Int, Float, Duration, Timeout, Bool) or, for Secret, the
	// secret file and then none.
	Defaulted bool
	// Secret is the OpenFaaS secret read when the variable is unset (the
	// third argument of Secret), else "".
	Secret string
	// Pos is file:line.
	Pos string
}

// readers are the calls that read a variable given as a string literal:
// os.Getenv and os.LookupEnv, optio/config's helpers, and calls of a
// config.Getenv value (by convention named env or getenv).
var readers = map[string]bool{
	"Getenv": true, "LookupEnv": true, "env": true, "getenv": true,
	"str": true, "Int": true, "Float": true, "Duration": true, "Timeout": true, "Bool": true, "Secret": true,
}

// defaulting readers take the default as their last argument.
var defaulting = map[string]bool{"str": true, "Int": true, "Float": true, "Duration": true, "Timeout": true, "Bool": true}

var envKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$`)

// ReadEnv finds the environment variables read by the non-test Go files
// under dir (skipping nested directories named testdata).
func ReadEnv(dir string) ([]EnvRead, error) {
	fset := token.NewFileSet()
	var out []EnvRead
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		guarded := guardedCalls(f)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			name := calleeName(call.Fun)
			if !readers[name] {
				return true
			}
			for i, arg := range call.Args {
				lit, ok := arg.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				key, err := strconv.Unquote(lit.Value)
				if err != nil || !envKeyRE.MatchString(key) {
					continue
				}
				r := EnvRead{Key: key, Reader: name, Pos: fmt.Sprintf("%s:%d", path, fset.Position(call.Pos()).Line)}
				switch {
				case guarded[call]:
					r.Defaulted = true
				case defaulting[name]:
					r.Defaulted = i < len(call.Args)-1
				case name == "Secret":
					r.Defaulted = true
					if i+1 < len(call.Args) {
						if s, ok := call.Args[i+1].(*ast.BasicLit); ok {
							r.Secret, _ = strconv.Unquote(s.Value)
						}
					}
				}
				out = append(out, r)
				break
			}
			return true
		})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// guardedCalls finds reads in the form `if v := ...env("KEY")...; v != "" {`:
// the code keeps its zero value (its default) when the variable is unset.
func guardedCalls(f *ast.File) map[*ast.CallExpr]bool {
	out := map[*ast.CallExpr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		ifs, ok := n.(*ast.IfStmt)
		if !ok || ifs.Init == nil {
			return true
		}
		as, ok := ifs.Init.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
			return true
		}
		v, ok := as.Lhs[0].(*ast.Ident)
		cond, ok2 := ifs.Cond.(*ast.BinaryExpr)
		if !ok || !ok2 || cond.Op != token.NEQ {
			return true
		}
		x, okx := cond.X.(*ast.Ident)
		y, oky := cond.Y.(*ast.BasicLit)
		if !okx || !oky || x.Name != v.Name || y.Value != `""` {
			return true
		}
		ast.Inspect(as.Rhs[0], func(m ast.Node) bool {
			if call, ok := m.(*ast.CallExpr); ok {
				out[call] = true
			}
			return true
		})
		return true
	})
	return out
}

func calleeName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}
