package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockPath is the file whose lock is held by whoever runs the gateway on its
// fixed ports (8080 and 8082) on this machine: a stack started by Start, or a
// test that starts a gateway. The kernel drops the lock when its process dies.
var LockPath = filepath.Join(os.TempDir(), "optio-gateway.lock")

// LockGateway takes the gateway lock, waiting until ctx ends. A test that
// starts a gateway takes it first, so test packages that run at the same time
// take turns instead of failing on a busy port.
func LockGateway(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("opening gateway lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", LockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another Optio stack or test holds %s (stop `make up` first): %w", LockPath, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
