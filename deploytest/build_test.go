package deploytest

import (
	"bytes"
	"context"
	"fmt"
	"go/version"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

// standInMain stands in for the golang-http template's main.go, which cannot
// be fetched while the tests run. Like the real one it is package main at
// the root of the build context, imports the function as handler/function
// and the SDK as handler, and calls Handle; that is all the build needs.
const standInMain = `// Stand-in for the golang-http template's main.go (see deploytest/build_test.go).
package main

import (
	"handler/function"

	handler "github.com/openfaas/templates-sdk/go-http"
)

func main() {
	_, _ = function.Handle(handler.Request{})
}
`

// templateGoMod is the template's own go.mod; the clean-up replaces it with
// the function's.
const templateGoMod = `module handler

go 1.24.0

require github.com/openfaas/templates-sdk/go-http v0.0.0-20220408082716-5981c545cb03
`

// TestTemplateBuild builds every function of stack.yml the way faas-cli and
// the golang-http template's Dockerfile do, with no workspace and no network:
//
//  1. faas-cli lays out the build context (go-sdk builder.CreateBuildContext):
//     the template at the root, the handler folder (minus build/ and
//     template/) under function/, each configuration.copy path p at
//     function/p;
//  2. the Dockerfile fails on unformatted Go code (gofmt -l);
//  3. modules-cleanup.sh moves function/go.mod and function/go.sum to the
//     root (set -e: a missing go.sum stops the build), rewrites "=> ./" to
//     "=> ./function/", drops handler/function lines, then
//     go mod edit -replace=handler/function=./function -module handler;
//  4. go test ./... in function/, then go build at the root.
//
// Here GOWORK=off, GOPROXY=off (module cache only) and GOFLAGS=-mod=mod; the
// template's default GOFLAGS is empty (-mod=readonly), so a go.mod or go.sum
// the build had to change fails too, as does a module graph that needs a
// newer Go than the template's build image.
func TestTemplateBuild(t *testing.T) {
	t.Parallel()
	st := loadStack(t, NoEnv)
	root := RepoRoot()
	goEnv := hermeticEnv(t)
	for _, name := range slices.Sorted(maps.Keys(st.Functions)) {
		fn := st.Functions[name]
		// One after the other: the first build fills the build cache for
		// CGO_ENABLED=0, which the others then share.
		t.Run(name, func(t *testing.T) {
			ctxDir := t.TempDir()
			layOut(t, ctxDir, filepath.Join(root, filepath.Clean(fn.Handler)), root, st.Configuration.Copy)
			gofmtCheck(t, ctxDir)
			missingSum := cleanUp(t, ctxDir, goEnv)
			if missingSum {
				t.Errorf("%s has no go.sum: modules-cleanup.sh runs `mv -f ./function/go.sum .` under set -e, so the image build stops there; see deploy/README.md (Function modules)", fn.Handler)
			}
			before := readBoth(t, ctxDir)
			primeModCache(t, ctxDir, goEnv)
			run(t, filepath.Join(ctxDir, "function"), goEnv, "go", "test", "./...", "-cover")
			run(t, ctxDir, goEnv, "go", "build", "-ldflags", "-s -w", "-o", "handler", ".")
			if fi, err := os.Stat(filepath.Join(ctxDir, "handler")); err != nil || fi.Size() == 0 {
				t.Errorf("no handler binary was built")
			}
			if after := readBoth(t, ctxDir); !missingSum && after != before {
				t.Errorf("the build had to change go.mod/go.sum, so it fails under the template's default -mod=readonly;"+
					" make %s/go.mod and go.sum complete (deploy/README.md, Function modules). Needed:\n%s", fn.Handler, after)
			}
			checkGoVersions(t, ctxDir, goEnv)
		})
	}
}

// hermeticEnv is the environment of the build: the toolchain and caches of
// this machine, nothing of the workspace, no network, no Optio settings.
func hermeticEnv(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT", "GOMODCACHE", "GOCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	v := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(v) != 4 {
		t.Fatalf("go env printed %q", out)
	}
	return []string{
		"PATH=" + filepath.Join(v[0], "bin") + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"GOMODCACHE=" + v[1], "GOCACHE=" + v[2], "GOPATH=" + v[3],
		"GOWORK=off", "GOPROXY=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local",
		"GO111MODULE=on", "CGO_ENABLED=0", "TMPDIR=" + os.TempDir(),
	}
}

// layOut builds the context as faas-cli does.
func layOut(t *testing.T, ctxDir, handlerDir, root string, copies []string) {
	t.Helper()
	write(t, filepath.Join(ctxDir, "main.go"), standInMain)
	write(t, filepath.Join(ctxDir, "go.mod"), templateGoMod)
	fnDir := filepath.Join(ctxDir, "function")
	entries, err := os.ReadDir(handlerDir)
	if err != nil {
		t.Fatalf("reading handler folder: %v", err)
	}
	for _, e := range entries {
		if e.Name() == "build" || e.Name() == "template" {
			continue
		}
		copyTree(t, filepath.Join(handlerDir, e.Name()), filepath.Join(fnDir, e.Name()))
	}
	for _, p := range copies {
		dest, err := copyDest(p)
		if err != nil {
			t.Fatalf("configuration.copy %q: %v", p, err)
		}
		copyTree(t, filepath.Join(root, filepath.Clean(p)), filepath.Join(fnDir, dest))
	}
}

// copyTree copies files and directories, following symbolic links as
// faas-cli's os.Stat-based copy does.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyTree(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
}

func gofmtCheck(t *testing.T, ctxDir string) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(ctxDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ctxDir, p)
		if d.IsDir() && (rel == "vendor" || rel == filepath.Join("function", "vendor")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("gofmt", append([]string{"-l"}, files...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("the template's gofmt check fails: %v\n%s", err, out)
	}
}

var handlerFunctionLine = regexp.MustCompile(`\shandler/function`)

// cleanUp does what the template's modules-cleanup.sh does to a function
// that is not vendored. It reports whether function/go.sum was missing (the
// real script stops there; this goes on with an empty go.sum to find more).
func cleanUp(t *testing.T, ctxDir string, goEnv []string) (missingSum bool) {
	t.Helper()
	fn := filepath.Join(ctxDir, "function")
	if _, err := os.Stat(filepath.Join(fn, "vendor")); err == nil {
		t.Fatalf("the function is vendored; this test only mirrors the module path of the clean-up")
	}
	if err := os.Rename(filepath.Join(fn, "go.mod"), filepath.Join(ctxDir, "go.mod")); err != nil {
		t.Fatalf("moving function/go.mod: %v", err)
	}
	if err := os.Rename(filepath.Join(fn, "go.sum"), filepath.Join(ctxDir, "go.sum")); err != nil {
		missingSum = true
		write(t, filepath.Join(ctxDir, "go.sum"), "")
	}
	data, err := os.ReadFile(filepath.Join(ctxDir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.Replace(line, "=> ./", "=> ./function/", 1) // sed without g: first match per line
		if handlerFunctionLine.MatchString(line) {
			continue
		}
		lines = append(lines, line)
	}
	write(t, filepath.Join(ctxDir, "go.mod"), strings.Join(lines, "\n"))
	run(t, ctxDir, goEnv, "go", "mod", "edit", "-replace=handler/function=./function", "-module", "handler")
	if err := os.MkdirAll(filepath.Join(fn, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	return missingSum
}

func readBoth(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}

// primeModCache downloads the modules the cleaned-up go.mod names into this
// machine's module cache, through the usual proxy: the template's image build
// has the network for that, and a fresh machine's cache need not hold the
// exact versions a function's go.sum pins (its own workspace may have
// selected newer ones). The build that follows runs with GOPROXY=off, so it
// still proves that go.mod and go.sum alone are enough. go.mod and go.sum
// are put back as they were: what the download might record is not the
// build's.
func primeModCache(t *testing.T, ctxDir string, goEnv []string) {
	t.Helper()
	saved := map[string][]byte{}
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(ctxDir, f))
		if err != nil {
			t.Fatal(err)
		}
		saved[f] = data
	}
	proxy, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		t.Fatalf("go env GOPROXY: %v", err)
	}
	env := append(slices.Clone(goEnv), "GOPROXY="+strings.TrimSpace(string(proxy)))
	run(t, ctxDir, env, "go", "mod", "download")
	for f, data := range saved {
		if err := os.WriteFile(filepath.Join(ctxDir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkGoVersions fails when the build needs a newer Go than the template's
// build image has: that image sets GOTOOLCHAIN=local, so it cannot switch.
func checkGoVersions(t *testing.T, ctxDir string, goEnv []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(ctxDir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mf.Go != nil && version.Compare(version.Lang("go"+mf.Go.Version), templateGo) > 0 {
		t.Errorf("the build's go.mod says go %s; the template's build image is %s with GOTOOLCHAIN=local and refuses it", mf.Go.Version, templateGo)
	}
	out := run(t, ctxDir, goEnv, "go", "list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}} {{.GoVersion}}{{end}}", ".", "./function/...")
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		path, gov, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || gov == "" || seen[path] {
			continue
		}
		seen[path] = true
		if version.Compare(version.Lang("go"+gov), templateGo) > 0 {
			t.Errorf("module %s needs go %s; the template builds with %s (GOTOOLCHAIN=local)", path, gov, templateGo)
		}
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
