package main

import (
	"strings"
	"testing"
)

// optio-up -h printed nothing and started the stack.
func TestHelpOnly(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		done bool
	}{
		{nil, 0, false},
		{[]string{"-h"}, 0, true},
		{[]string{"--help"}, 0, true},
		{[]string{"-x"}, 2, true},
	} {
		var out strings.Builder
		code, done := helpOnly(tc.args, &out)
		if code != tc.code || done != tc.done {
			t.Errorf("%q: (%d, %v), want (%d, %v)", tc.args, code, done, tc.code, tc.done)
		}
		if done != strings.Contains(out.String(), "usage: optio-up") {
			t.Errorf("%q: printed %q", tc.args, out.String())
		}
	}
}
