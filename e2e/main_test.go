package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"optio.dev/local/supervisor"
	"optio.dev/optio/index"
)

// stack is the product under test, started once by TestMain.
var stack struct {
	*supervisor.Stack
	gateway *gateway
	index   *index.Index
	env     map[string]string
	bin     string
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin := os.Getenv("OPTIO_BIN_DIR")
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	state, err := os.MkdirTemp("", "optio-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	// The suite's own keys, queue and index: nothing else on the machine is
	// seen or touched, and nothing of the suite is left in anybody's way.
	env := map[string]string{
		"OPTIO_PREFIX": "e2e:" + id + ":",
		"OPTIO_QUEUE":  "e2e." + id + ".jobs",
		"OPTIO_INDEX":  "e2e_" + id,
	}
	if es := os.Getenv("ES_URL"); es != "" {
		env["ES_URL"] = es
	}
	log, err := os.Create(filepath.Join(state, "stack.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // LockWait, then the start
	defer cancel()
	s, err := supervisor.Start(ctx, supervisor.Config{
		BinDir:         bin,
		StateDir:       state,
		StackFile:      filepath.Join(root, "stack.yml"),
		ServicesScript: filepath.Join(root, "scripts", "services.sh"),
		ESURL:          os.Getenv("ES_URL"),
		Env:            env,
		LockWait:       10 * time.Minute,
		Output:         log,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the stack (logs in %s): %v\n", state, err)
		return 1
	}
	esURL := os.Getenv("ES_URL")
	if esURL == "" {
		esURL = supervisor.ESStoreURL
	}
	ix, err := index.New(index.Config{URL: esURL, Index: env["OPTIO_INDEX"]})
	if err != nil {
		s.Stop()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stack.Stack, stack.index, stack.env, stack.bin = s, ix, env, bin
	stack.gateway = &gateway{url: s.GatewayURL(), http: &http.Client{Timeout: time.Minute}}
	code := m.Run()
	printFaultTable()
	s.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "stack logs kept in %s\n", state)
	} else {
		os.RemoveAll(state)
	}
	return code
}
