package deploytest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"golang.org/x/mod/modfile"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The golang-http template stack.yml pins, and what its Dockerfile at that
// commit builds with (template/golang-http/Dockerfile in
// github.com/openfaas/golang-http-template, commit 9644d65: the build stage is
// golang:1.25-alpine, whose image sets GOTOOLCHAIN=local).
const (
	templateRepo   = "https://github.com/openfaas/golang-http-template"
	templateCommit = "9644d65"
	templateGo     = "go1.25"
)

// watchdogKeys are environment variables read by the template's main.go and
// by of-watchdog rather than by Optio's code.
var watchdogKeys = map[string]bool{
	"read_timeout": true, "write_timeout": true, "exec_timeout": true,
	"healthcheck_interval": true, "max_inflight": true, "prefix_logs": true,
	"log_buffer_size": true, "buffer_http": true, "content_type": true,
}

// minExec is how long an invocation of each function may legitimately run,
// from the code: a schedule tick is bounded at 2 minutes
// (functions/schedule/handler.go), stop waits up to 15 s for the lease
// (functions/stop/handler.go).
var minExec = map[string]time.Duration{
	"schedule": 2 * time.Minute,
	"stop":     15 * time.Second,
}

func loadStack(t *testing.T, lookup func(string) (string, bool)) *Stack {
	t.Helper()
	st, err := LoadStack(filepath.Join(RepoRoot(), "stack.yml"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStackFile(t *testing.T) {
	t.Parallel()
	st := loadStack(t, NoEnv)
	if st.Provider.Name != "openfaas" {
		t.Errorf("provider.name = %q, want openfaas", st.Provider.Name)
	}
	if st.Version != "1.0" {
		t.Errorf("version = %q, want 1.0", st.Version)
	}
	want := templateRepo + "#sha-" + templateCommit
	var found bool
	for _, tpl := range st.Configuration.Templates {
		if tpl.Name == "golang-http" {
			found = true
			if tpl.Source != want {
				t.Errorf("configuration.templates golang-http source = %q, want %q (the commit this test mirrors)", tpl.Source, want)
			}
		}
	}
	if !found {
		t.Errorf("configuration.templates has no golang-http")
	}
	if len(st.Configuration.Copy) == 0 {
		t.Errorf("configuration.copy is empty: the functions' shared module would not reach their build context")
	}
	for _, p := range st.Configuration.Copy {
		if _, err := copyDest(p); err != nil {
			t.Errorf("configuration.copy %q: %v", p, err)
			continue
		}
		if fi, err := os.Stat(filepath.Join(RepoRoot(), p)); err != nil || !fi.IsDir() {
			t.Errorf("configuration.copy %q is not a directory of the repository", p)
		}
	}
	if len(st.Functions) != 5 {
		t.Errorf("stack has %d functions, want the five: %v", len(st.Functions), slices.Sorted(maps.Keys(st.Functions)))
	}
}

// copyDest checks a configuration.copy path as faas-cli does (inside the
// project, not the project itself) and returns where it lands relative to the
// function folder of the build context.
func copyDest(p string) (string, error) {
	clean := filepath.Clean(p)
	switch {
	case filepath.IsAbs(clean), clean == ".", clean == "..", strings.HasPrefix(clean, "../"):
		return "", errString("must be a path inside the project, not the project itself")
	}
	return clean, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func TestStackImages(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REGISTRY": "registry.example/team", "TAG": "1.2.3"}
	st := loadStack(t, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	def := loadStack(t, NoEnv)
	for name, fn := range st.Functions {
		if want := "registry.example/team/optio-" + name + ":1.2.3"; fn.Image != want {
			t.Errorf("%s: image with REGISTRY and TAG set = %q, want %q", name, fn.Image, want)
		}
		img := def.Functions[name].Image
		if i := strings.LastIndex(img, ":"); i < 0 || img[i+1:] == "" || img[i+1:] == "latest" || strings.Contains(img[i+1:], "/") {
			t.Errorf("%s: default image %q has no explicit tag", name, img)
		}
	}
}

func TestStackFunctions(t *testing.T) {
	t.Parallel()
	st := loadStack(t, NoEnv)
	root := RepoRoot()
	shared, err := ReadEnv(filepath.Join(root, "optio"))
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(st.Functions)) {
		fn := st.Functions[name]
		dir := filepath.Join(root, filepath.Clean(fn.Handler))
		mf := readModFile(t, filepath.Join(dir, "go.mod"))
		if mf != nil {
			path := mf.Module.Mod.Path
			if path == "handler/function" || path == "handler" {
				t.Errorf("%s: module %q clashes with the template's own module names", name, path)
			}
			if other, dup := modules[path]; dup {
				t.Errorf("%s and %s both are module %q: two such modules cannot both be in go.work", name, other, path)
			}
			modules[path] = name
		}
		t.Run(name, func(t *testing.T) {
			if fn.Lang != "golang-http" {
				t.Errorf("lang = %q, want golang-http", fn.Lang)
			}
			if !strings.HasPrefix(fn.Handler, "./") {
				t.Errorf("handler %q should be a ./ path relative to stack.yml", fn.Handler)
			}
			checkHandle(t, dir)
			if mf != nil {
				checkReplaces(t, mf, st.Configuration.Copy)
			}
			own, err := ReadEnv(dir)
			if err != nil {
				t.Fatal(err)
			}
			reads := append(slices.Clone(shared), own...)
			checkEnv(t, fn, reads)
			checkSecrets(t, fn, reads)
			checkRequiredSecrets(t, name, fn)
			checkTimeouts(t, name, fn)
			checkLabels(t, name, fn)
			checkResources(t, fn)
		})
	}
}

func readModFile(t *testing.T, path string) *modfile.File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("the handler folder needs a go.mod: %v", err)
		return nil
	}
	mf, err := modfile.Parse(path, data, nil)
	if err != nil {
		t.Errorf("parsing %s: %v", path, err)
		return nil
	}
	return mf
}

// checkHandle finds `func Handle(req handler.Request) (handler.Response,
// error)` in package function, handler being templates-sdk/go-http.
func checkHandle(t *testing.T, dir string) {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("parsing %s: %v", path, err)
			continue
		}
		if f.Name.Name != "function" {
			t.Errorf("%s is package %s; the template imports package function", path, f.Name.Name)
		}
		sdk := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/openfaas/templates-sdk/go-http" {
				sdk = "http"
				if imp.Name != nil {
					sdk = imp.Name.Name
				}
			}
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Name.Name != "Handle" {
				continue
			}
			found = true
			want := sdk + ".Request -> " + sdk + ".Response, error"
			if got := signature(fd.Type); sdk == "" || got != want {
				t.Errorf("%s: Handle is (%s), want (%s) from templates-sdk/go-http", path, got, want)
			}
		}
	}
	if !found {
		t.Errorf("no func Handle in %s", dir)
	}
}

func signature(ft *ast.FuncType) string {
	list := func(fl *ast.FieldList) []string {
		var out []string
		if fl == nil {
			return out
		}
		for _, f := range fl.List {
			n := max(1, len(f.Names))
			for range n {
				out = append(out, exprString(f.Type))
			}
		}
		return out
	}
	return strings.Join(list(ft.Params), ", ") + " -> " + strings.Join(list(ft.Results), ", ")
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	}
	return "?"
}

// checkReplaces: the template's clean-up rewrites "=> ./" to
// "=> ./function/", so a local replace works only when it points into the
// handler folder and that folder is filled by configuration.copy; a "../"
// replace points outside the build context.
func checkReplaces(t *testing.T, mf *modfile.File, copies []string) {
	t.Helper()
	for _, r := range mf.Replace {
		if r.New.Version != "" {
			continue
		}
		target := r.New.Path
		switch {
		case strings.HasPrefix(target, "../") || filepath.IsAbs(target):
			t.Errorf("replace %s => %s points outside the build context; use ./%s with configuration.copy", r.Old.Path, target, filepath.Base(target))
		case strings.HasPrefix(target, "./"):
			dest := filepath.Clean(target)
			var covered bool
			for _, c := range copies {
				if d, err := copyDest(c); err == nil && d == dest {
					covered = true
				}
			}
			if !covered {
				t.Errorf("replace %s => %s: nothing in configuration.copy lands at function/%s", r.Old.Path, target, dest)
			}
		default:
			t.Errorf("replace %s => %s: the template's clean-up only rewrites replaces starting with ./", r.Old.Path, target)
		}
	}
}

func checkEnv(t *testing.T, fn Function, reads []EnvRead) {
	t.Helper()
	read := map[string]bool{}
	for _, r := range reads {
		read[r.Key] = true
		if r.Defaulted {
			continue
		}
		if strings.TrimSpace(fn.Environment[r.Key]) == "" {
			t.Errorf("%s reads %s (%s) with no default, and stack.yml does not set it", r.Pos, r.Key, r.Reader)
		}
	}
	for k, v := range fn.Environment {
		if !read[k] && !watchdogKeys[k] {
			t.Errorf("environment %s=%q is read by neither the function's code nor the template/watchdog", k, v)
		}
	}
}

func checkSecrets(t *testing.T, fn Function, reads []EnvRead) {
	t.Helper()
	known := map[string]bool{}
	for _, r := range reads {
		if r.Secret != "" {
			known[r.Secret] = true
		}
	}
	for _, s := range fn.Secrets {
		if !known[s] {
			t.Errorf("secret %q is not read by the code (it reads %v); OpenFaaS refuses to deploy a function whose secret does not exist", s, slices.Sorted(maps.Keys(known)))
		}
	}
}

// requiredSecrets are the secrets a function cannot do its work without on
// a cluster, where nothing sets OPENFAAS_USER or ES_PASSWORD for it: status
// counts process's replicas through the gateway's /system API, which needs
// basic auth; process writes to Elasticsearch. Other functions read these
// through the shared config too but never use them.
var requiredSecrets = map[string][]string{
	"status":  {"basic-auth-user", "basic-auth-password"},
	"process": {"es-username", "es-password"},
}

func checkRequiredSecrets(t *testing.T, name string, fn Function) {
	t.Helper()
	for _, s := range requiredSecrets[name] {
		if !slices.Contains(fn.Secrets, s) {
			t.Errorf("%s needs secret %q on a cluster, but stack.yml does not list it under secrets:", name, s)
		}
	}
}

func checkTimeouts(t *testing.T, name string, fn Function) {
	t.Helper()
	d := map[string]time.Duration{}
	for _, k := range []string{"read_timeout", "write_timeout", "exec_timeout"} {
		v, ok := fn.Environment[k]
		if !ok {
			t.Errorf("environment has no %s", k)
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			t.Errorf("%s=%q is not a positive duration", k, v)
		}
		d[k] = dur
	}
	if d["write_timeout"] < d["exec_timeout"] {
		t.Errorf("write_timeout %v < exec_timeout %v: the answer of a long invocation could not be written", d["write_timeout"], d["exec_timeout"])
	}
	if m, ok := minExec[name]; ok && d["exec_timeout"] <= m {
		t.Errorf("exec_timeout %v does not exceed %v, how long the code lets an invocation run", d["exec_timeout"], m)
	}
}

func checkLabels(t *testing.T, name string, fn Function) {
	t.Helper()
	num := func(key string) (int, bool) {
		v, ok := fn.Labels[key]
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Errorf("label %s=%q is not an integer", key, v)
			return 0, false
		}
		return n, true
	}
	lo, hasMin := num("com.openfaas.scale.min")
	hi, hasMax := num("com.openfaas.scale.max")
	factor, hasFactor := num("com.openfaas.scale.factor")
	if hasMin && lo < 1 {
		t.Errorf("com.openfaas.scale.min=%d: Optio's functions must keep a replica", lo)
	}
	if hasMin && hasMax && lo > hi {
		t.Errorf("com.openfaas.scale.min %d > com.openfaas.scale.max %d", lo, hi)
	}
	if hasFactor && (factor < 0 || factor > 100) {
		t.Errorf("com.openfaas.scale.factor=%d is not a percentage", factor)
	}

	topic := fn.Annotations["topic"]
	switch name {
	case "process":
		if !hasMin || !hasMax || !hasFactor {
			t.Errorf("process needs com.openfaas.scale.min, .max and .factor labels, has %v", fn.Labels)
		}
		if q := fn.Environment["OPTIO_QUEUE"]; topic != "optio.jobs" || (q != "" && q != topic) {
			t.Errorf("process topic = %q, OPTIO_QUEUE = %q; want both optio.jobs", topic, q)
		}
	case "schedule":
		if topic != "cron-function" {
			t.Errorf("schedule topic = %q, want cron-function", topic)
		}
		spec := fn.Annotations["schedule"]
		if len(strings.Fields(spec)) != 5 {
			t.Errorf("schedule %q is not a 5-field cron expression", spec)
		} else if _, err := cron.ParseStandard(spec); err != nil {
			t.Errorf("schedule %q: %v", spec, err)
		}
	default:
		if topic != "" {
			t.Errorf("%s has topic %q: the connector would invoke it for every message", name, topic)
		}
	}
}

func checkResources(t *testing.T, fn Function) {
	t.Helper()
	if fn.Requests == nil || fn.Limits == nil {
		t.Errorf("requests and limits should both be set")
		return
	}
	for _, pair := range []struct{ what, req, lim string }{
		{"memory", fn.Requests.Memory, fn.Limits.Memory},
		{"cpu", fn.Requests.CPU, fn.Limits.CPU},
	} {
		rq, err1 := resource.ParseQuantity(pair.req)
		lq, err2 := resource.ParseQuantity(pair.lim)
		if err1 != nil || err2 != nil {
			t.Errorf("%s request %q / limit %q: %v %v", pair.what, pair.req, pair.lim, err1, err2)
			continue
		}
		if rq.Cmp(lq) > 0 {
			t.Errorf("%s request %s exceeds limit %s", pair.what, pair.req, pair.lim)
		}
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": "v", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, err string }{
		{"${SET:-d}", "v", ""},
		{"${EMPTY:-d}", "d", ""},
		{"${UNSET:-a:b/c}", "a:b/c", ""},
		{"${SET}", "v", ""},
		{"$SET", "", "unsupported"},
		{"${SET:?x}", "", "unsupported"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Expand(tc.in, lookup)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Expand(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestReadEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `package x

import "os"

func f(env func(string) string) {
	_ = os.Getenv("PLAIN_KEY")
	_ = str(env, "WITH_DEFAULT", "d")
	_, _ = Int(env, "NO_DEFAULT_INT")
	_ = c.Secret(env, "SECRET_KEY", "secret-file")
	_ = env("VIA_GETENV")
	if v := strings.TrimSpace(env("GUARDED_KEY")); v != "" {
		_ = v
	}
	_ = fmt.Sprintf("NOT_A_READ_%s", "x")
}
`
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reads, err := ReadEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]EnvRead{}
	for _, r := range reads {
		r.Pos = ""
		got[r.Key] = r
	}
	want := map[string]EnvRead{
		"PLAIN_KEY":      {Key: "PLAIN_KEY", Reader: "Getenv"},
		"WITH_DEFAULT":   {Key: "WITH_DEFAULT", Reader: "str", Defaulted: true},
		"NO_DEFAULT_INT": {Key: "NO_DEFAULT_INT", Reader: "Int"},
		"SECRET_KEY":     {Key: "SECRET_KEY", Reader: "Secret", Defaulted: true, Secret: "secret-file"},
		"VIA_GETENV":     {Key: "VIA_GETENV", Reader: "env"},
		"GUARDED_KEY":    {Key: "GUARDED_KEY", Reader: "env", Defaulted: true},
	}
	if !maps.Equal(got, want) {
		t.Fatalf("ReadEnv = %+v\nwant %+v", got, want)
	}
}
