package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGatewayCredentials(t *testing.T) {
	dir := t.TempDir()
	first, err := gatewayCredentials(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.User != "admin" || len(first.Password) < 20 {
		t.Fatalf("generated credentials %q/%q, want admin and a long random password", first.User, first.Password)
	}
	again, err := gatewayCredentials(dir, "")
	if err != nil || again.Password != first.Password {
		t.Fatalf("second start got %q (%v), want the kept password %q", again.Password, err, first.Password)
	}
	// A deployment that hands the same password to its connector
	// (OPTIO_GATEWAY_PASSWORD) replaces the kept one; the gateway reads it
	// from the file.
	given, err := gatewayCredentials(dir, "from-compose")
	if err != nil || given.Password != "from-compose" {
		t.Fatalf("given password: got %q (%v)", given.Password, err)
	}
	path := filepath.Join(dir, "gateway", "basic-auth-password")
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "from-compose" {
		t.Fatalf("%s holds %q (%v), want the given password", path, b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
}
