package provider

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/openfaas/faas-provider/types"
)

// Secrets live as files under StateDir/secrets, one per secret. A function
// gets copies of the ones it names under StateDir/functions/NAME/secrets,
// which its OPTIO_SECRETS_DIR points to, as OpenFaaS mounts them under
// /var/openfaas/secrets.

func (rt *Runtime) secretPath(name string) (string, error) {
	if !nameRE.MatchString(name) {
		return "", badRequest("secret name %q is not valid (lower-case letters, digits and '-', at most 63)", name)
	}
	return filepath.Join(rt.cfg.StateDir, "secrets", name), nil
}

// Secrets lists the names of the stored secrets.
func (rt *Runtime) Secrets() ([]types.Secret, error) {
	entries, err := os.ReadDir(filepath.Join(rt.cfg.StateDir, "secrets"))
	if err != nil {
		return nil, fmt.Errorf("listing secrets: %w", err)
	}
	out := make([]types.Secret, 0, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && nameRE.MatchString(e.Name()) {
			out = append(out, types.Secret{Name: e.Name(), Namespace: Namespace})
		}
	}
	return out, nil
}

// PutSecret creates (create true) or replaces a secret. Functions that use it
// see the new value when they are next deployed.
func (rt *Runtime) PutSecret(s types.Secret, create bool) error {
	p, err := rt.secretPath(s.Name)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(p)
	switch {
	case create && statErr == nil:
		return fmt.Errorf("secret %q: %w", s.Name, ErrExists)
	case !create && errors.Is(statErr, fs.ErrNotExist):
		return fmt.Errorf("secret %q: %w", s.Name, ErrNotFound)
	}
	value := s.RawValue
	if s.Value != "" {
		value = []byte(s.Value)
	}
	return writeFileAtomic(p, value)
}

// DeleteSecret removes a stored secret.
func (rt *Runtime) DeleteSecret(name string) error {
	p, err := rt.secretPath(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("secret %q: %w", name, ErrNotFound)
		}
		return fmt.Errorf("deleting secret %q: %w", name, err)
	}
	return nil
}

// writeFunctionSecrets makes dir hold exactly the named secrets.
func (rt *Runtime) writeFunctionSecrets(dir string, names []string) error {
	values := make(map[string][]byte, len(names))
	for _, n := range names {
		p, err := rt.secretPath(n)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return badRequest("secret %q does not exist: create it first (faas-cli secret create %s)", n, n)
			}
			return fmt.Errorf("reading secret %q: %w", n, err)
		}
		values[n] = b
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating function secrets directory: %w", err)
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading function secrets directory: %w", err)
	}
	for _, e := range old {
		if !slices.Contains(names, e.Name()) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	for n, v := range values {
		if err := writeFileAtomic(filepath.Join(dir, n), v); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
