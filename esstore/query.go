package esstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// Query is a parsed _count query: match_all, or one term on one field.
type Query struct {
	MatchAll bool
	Field    string
	// Value is the term: a string, json.Number or bool.
	Value any
}

// ParseCountBody parses the body of a _count request. An empty body counts
// everything. It accepts {"query":{"match_all":{}}}, {"query":{"term":{"f":v}}}
// and {"query":{"term":{"f":{"value":v}}}}, and answers anything else the way
// Elasticsearch does (400 parsing_exception).
func ParseCountBody(body []byte) (Query, *Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Query{MatchAll: true}, nil
	}
	var top map[string]json.RawMessage
	if err := decodeStrict(body, &top); err != nil {
		return Query{}, errParsing("request body is not a JSON object: " + err.Error())
	}
	for k := range top {
		if k != "query" {
			return Query{}, errParsing(fmt.Sprintf("request does not support [%s]", k))
		}
	}
	raw, ok := top["query"]
	if !ok || isNull(raw) {
		return Query{MatchAll: true}, nil
	}
	return parseQuery(raw)
}

func parseQuery(raw json.RawMessage) (Query, *Error) {
	var q map[string]json.RawMessage
	if err := decodeStrict(raw, &q); err != nil {
		return Query{}, errParsing("[_na] query malformed, must start with start_object")
	}
	if len(q) == 0 {
		return Query{}, errParsing("query malformed, empty clause found")
	}
	if len(q) > 1 {
		keys := sortedKeys(q)
		return Query{}, errParsing(fmt.Sprintf("[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME]", keys[0]))
	}
	for name, body := range q {
		switch name {
		case "match_all":
			var opts map[string]json.RawMessage
			if err := decodeStrict(body, &opts); err != nil {
				return Query{}, errParsing("[match_all] query malformed, no start_object after query name")
			}
			for k := range opts {
				if k != "boost" && k != "_name" {
					return Query{}, errParsing(fmt.Sprintf("[match_all] query does not support [%s]", k))
				}
			}
			return Query{MatchAll: true}, nil
		case "term":
			return parseTerm(body)
		default:
			e := errParsing(fmt.Sprintf("unknown query [%s]", name))
			e.CausedBy = &Error{Type: "named_object_not_found_exception",
				Reason: fmt.Sprintf("[1:1] unknown field [%s]", name)}
			return Query{}, e
		}
	}
	panic("unreachable")
}

func parseTerm(body json.RawMessage) (Query, *Error) {
	var fields map[string]json.RawMessage
	if err := decodeStrict(body, &fields); err != nil {
		return Query{}, errParsing("[term] query malformed, no start_object after query name")
	}
	if len(fields) == 0 {
		return Query{}, errIllegalArgument("field name is null or empty")
	}
	if len(fields) > 1 {
		keys := sortedKeys(fields)
		return Query{}, errParsing(fmt.Sprintf("[term] query doesn't support multiple fields, found [%s] and [%s]", keys[0], keys[1]))
	}
	for field, raw := range fields {
		if field == "" {
			return Query{}, errIllegalArgument("field name is null or empty")
		}
		v, err := decodeValue(raw)
		if err != nil {
			return Query{}, errParsing("[term] query malformed: " + err.Error())
		}
		if obj, ok := v.(map[string]any); ok {
			val, has := obj["value"]
			for k, o := range obj {
				switch k {
				case "value", "boost", "_name":
				case "case_insensitive":
					if o == true {
						return Query{}, errParsing("[term] query option [case_insensitive] is not supported by the optio-esstore stand-in")
					}
				default:
					return Query{}, errParsing(fmt.Sprintf("[term] query does not support [%s]", k))
				}
			}
			if !has {
				return Query{}, errIllegalArgument("value cannot be null")
			}
			v = val
		}
		switch v.(type) {
		case string, json.Number, bool:
		case nil:
			return Query{}, errIllegalArgument("value cannot be null")
		default:
			return Query{}, errParsing(fmt.Sprintf("[term] query does not support array or object values for field [%s]", field))
		}
		return Query{Field: field, Value: v}, nil
	}
	panic("unreachable")
}

// decodeStrict decodes one JSON value and rejects trailing data.
func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

func decodeValue(data []byte) (any, error) {
	var v any
	err := decodeStrict(data, &v)
	return v, err
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
