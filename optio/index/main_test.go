package index

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// esURL is what the contract tests run against: ES_URL (a real
// Elasticsearch 8 or a running optio-esstore), or else an optio-esstore this
// package starts itself.
var esURL string

// localStore is true when esURL is optio-esstore (it serves /_optio/faults).
var localStore bool

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	esURL = os.Getenv("ES_URL")
	if esURL == "" {
		url, stop, err := startStore()
		if err != nil {
			fmt.Fprintf(os.Stderr, "ES_URL is unset and the local store could not be started: %v\n", err)
			return 1
		}
		defer stop()
		esURL = url
	}
	localStore = probeLocalStore(esURL)
	kind := "Elasticsearch"
	if localStore {
		kind = "optio-esstore (a stand-in for Elasticsearch)"
	}
	fmt.Fprintf(os.Stderr, "contract tests against %s at %s\n", kind, esURL)
	return m.Run()
}

// startStore builds optio-esstore (or takes ESSTORE_BIN) and runs it on a
// free port with a temporary data directory.
func startStore() (string, func(), error) {
	dir, err := os.MkdirTemp("", "optio-index-test-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin := os.Getenv("ESSTORE_BIN")
	if bin == "" {
		src, err := filepath.Abs(filepath.Join("..", "..", "esstore"))
		if err != nil {
			cleanup()
			return "", nil, err
		}
		bin = filepath.Join(dir, "optio-esstore")
		build := exec.Command("go", "build", "-o", bin, "./cmd/optio-esstore")
		build.Dir = src
		if out, err := build.CombinedOutput(); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("building optio-esstore in %s (set ES_URL or ESSTORE_BIN instead): %v\n%s", src, err, out)
		}
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ESSTORE_ADDR=127.0.0.1:0", "ESSTORE_DATA="+filepath.Join(dir, "data"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		cleanup()
	}
	addrRE := regexp.MustCompile(`addr=(\S+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if m := addrRE.FindStringSubmatch(line); m != nil && !sent {
				found <- m[1]
				sent = true
			}
			if strings.Contains(line, "level=ERROR") {
				fmt.Fprintln(os.Stderr, "optio-esstore:", line)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case addr := <-found:
		return "http://" + addr, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, fmt.Errorf("optio-esstore did not report its address within 30s")
	}
}

func probeLocalStore(url string) bool {
	res, err := http.Get(url + "/_optio/faults")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode == http.StatusOK && strings.Contains(string(b), `"faults"`)
}

// suffix is a random suffix that keeps tests' indices and runs apart.
func suffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newIndex is a client of a fresh index of this test, deleted at the end.
func newIndex(t *testing.T, mod func(*Config)) *Index {
	t.Helper()
	name := "optio_test_" + strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_")) + "_" + suffix()
	cfg := Config{URL: esURL, Index: name, Username: os.Getenv("ES_USERNAME"), Password: os.Getenv("ES_PASSWORD")}
	if mod != nil {
		mod(&cfg)
	}
	ix, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := ix.Client().Indices.Delete([]string{name}, ix.Client().Indices.Delete.WithContext(ctx))
		if err == nil {
			res.Body.Close()
		}
	})
	return ix
}
