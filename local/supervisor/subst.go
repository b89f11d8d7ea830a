package supervisor

import (
	"fmt"
	"strings"
)

// expand substitutes variables in stack.yml text the way faas-cli does
// before it parses the file: ${NAME}, $NAME, ${NAME:-default} (default when
// unset or empty), ${NAME-default} (default when unset); "$$" is a literal
// "$". Defaults may themselves hold variables.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i += 2
		case next == '{':
			end, err := closingBrace(s, i+2)
			if err != nil {
				return "", err
			}
			v, err := expandBraced(s[i+2:end], lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end + 1
		case isNameStart(next):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			v, _ := lookup(s[i+1 : j])
			b.WriteString(v)
			i = j
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), nil
}

// closingBrace finds the '}' closing a "${" whose body starts at from.
func closingBrace(s string, from int) (int, error) {
	depth := 1
	for j := from; j < len(s); j++ {
		switch {
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case s[j] == '}':
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("stack file: unterminated ${ at byte %d", from-2)
}

func expandBraced(body string, lookup func(string) (string, bool)) (string, error) {
	j := 0
	for j < len(body) && isNameChar(body[j]) {
		j++
	}
	name, rest := body[:j], body[j:]
	if name == "" || !isNameStart(name[0]) {
		return "", fmt.Errorf("stack file: ${%s} does not start with a variable name", body)
	}
	v, set := lookup(name)
	switch {
	case rest == "":
		return v, nil
	case strings.HasPrefix(rest, ":-"):
		if set && v != "" {
			return v, nil
		}
		return expand(rest[2:], lookup)
	case strings.HasPrefix(rest, "-"):
		if set {
			return v, nil
		}
		return expand(rest[1:], lookup)
	default:
		return "", fmt.Errorf("stack file: ${%s}: only ${NAME}, ${NAME:-default} and ${NAME-default} are supported", body)
	}
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }
