package supervisor

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Credentials are the gateway's basic auth credentials for its /system API,
// as OpenFaaS sets basic_auth=true by default.
type Credentials struct {
	User, Password string
	// Dir holds them as the files basic-auth-user and basic-auth-password
	// (mode 0600): the gateway's secret_mount_path.
	Dir string
}

// gatewayCredentials returns the credentials kept in StateDir/gateway,
// generating them on first start: user admin and a random password, each in
// a file only the owner can read. A password given replaces the kept one.
func gatewayCredentials(stateDir, password string) (Credentials, error) {
	c := Credentials{Dir: filepath.Join(stateDir, "gateway")}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return c, fmt.Errorf("creating the gateway's secrets directory: %w", err)
	}
	read := func(name string, dst *string, generate func() string) error {
		path := filepath.Join(c.Dir, name)
		b, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			*dst = strings.TrimSpace(string(b))
			return os.Chmod(path, 0o600)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		*dst = generate()
		if err := os.WriteFile(path, []byte(*dst), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	}
	if err := read("basic-auth-user", &c.User, func() string { return "admin" }); err != nil {
		return c, err
	}
	if password != "" {
		c.Password = password
		path := filepath.Join(c.Dir, "basic-auth-password")
		if err := os.WriteFile(path, []byte(password), 0o600); err != nil {
			return c, fmt.Errorf("writing %s: %w", path, err)
		}
		return c, os.Chmod(path, 0o600)
	}
	err := read("basic-auth-password", &c.Password, func() string {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	})
	return c, err
}
