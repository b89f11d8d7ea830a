package esstore

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// BulkOp is one action of a _bulk body: its metadata line and, for index,
// create and update, the source line that follows it.
type BulkOp struct {
	// Action is index, create, update or delete.
	Action string
	Index  string
	// ID is the document id; empty for index/create means "generate one".
	ID string
	// Source is the raw source line, not yet checked (a malformed source
	// fails only its own item, as in Elasticsearch).
	Source []byte
	// Line is the 1-based line number of the action line.
	Line int
}

var bulkMetaKeys = map[string]bool{
	"_index": true, "_id": true, "routing": true, "if_seq_no": true, "if_primary_term": true,
	"version": true, "version_type": true, "pipeline": true, "require_alias": true,
	"require_data_stream": true, "dynamic_templates": true, "retry_on_conflict": true,
	"_source": true, "list_executed_pipelines": true,
}

// maxIDBytes is Elasticsearch's limit on _id length.
const maxIDBytes = 512

// ParseBulk splits an NDJSON _bulk body into operations. defaultIndex is the
// index named in the path (/{index}/_bulk), or "". Errors are the
// request-level 400 answers Elasticsearch gives for a malformed body.
func ParseBulk(body []byte, defaultIndex string) ([]BulkOp, *Error) {
	if len(body) == 0 {
		return nil, errValidation("no requests added")
	}
	if body[len(body)-1] != '\n' {
		return nil, errIllegalArgument(`The bulk request must be terminated by a newline [\n]`)
	}
	var ops []BulkOp
	line := 0
	rest := body
	next := func() ([]byte, bool) {
		if len(rest) == 0 {
			return nil, false
		}
		i := bytes.IndexByte(rest, '\n')
		l := rest[:i]
		rest = rest[i+1:]
		line++
		return bytes.TrimRight(l, "\r"), true
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		op, e := parseBulkAction(l, line, defaultIndex)
		if e != nil {
			return nil, e
		}
		if op.Action != "delete" {
			src, ok := next()
			if !ok {
				return nil, errValidation("source is missing")
			}
			op.Source = src
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, errValidation("no requests added")
	}
	for i, op := range ops {
		if op.Index == "" {
			return nil, errValidation(fmt.Sprintf("index is missing (item %d)", i))
		}
		if op.Action == "delete" || op.Action == "update" {
			if op.ID == "" {
				return nil, errValidation("id is missing")
			}
		}
		if len(op.ID) > maxIDBytes {
			return nil, errValidation(fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", op.ID, len(op.ID)))
		}
	}
	return ops, nil
}

func parseBulkAction(l []byte, line int, defaultIndex string) (BulkOp, *Error) {
	op := BulkOp{Line: line, Index: defaultIndex}
	v, err := decodeValue(l)
	if err != nil {
		return op, &Error{Status: 400, Type: "x_content_parse_exception",
			Reason: fmt.Sprintf("[%d:1] Malformed action/metadata line [%d]: %v", line, line, err)}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return op, errIllegalArgument(fmt.Sprintf("Malformed action/metadata line [%d], expected START_OBJECT or END_OBJECT but found [%s]", line, tokenName(v)))
	}
	if len(obj) != 1 {
		return op, errIllegalArgument(fmt.Sprintf("Malformed action/metadata line [%d], expected a single action but found %d", line, len(obj)))
	}
	for action, meta := range obj {
		switch action {
		case "index", "create", "update", "delete":
		default:
			return op, errIllegalArgument(fmt.Sprintf("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", line, action))
		}
		op.Action = action
		m, ok := meta.(map[string]any)
		if !ok {
			return op, errIllegalArgument(fmt.Sprintf("Malformed action/metadata line [%d], expected START_OBJECT but found [%s]", line, tokenName(meta)))
		}
		for k, v := range m {
			if !bulkMetaKeys[k] {
				return op, errIllegalArgument(fmt.Sprintf("Action/metadata line [%d] contains an unknown parameter [%s]", line, k))
			}
			switch k {
			case "_index":
				s, ok := v.(string)
				if !ok {
					return op, errIllegalArgument(fmt.Sprintf("Malformed action/metadata line [%d], _index must be a string", line))
				}
				op.Index = s
			case "_id":
				switch x := v.(type) {
				case string:
					op.ID = x
				case json.Number:
					op.ID = x.String()
				default:
					return op, errIllegalArgument(fmt.Sprintf("Malformed action/metadata line [%d], _id must be a string", line))
				}
				if op.ID == "" {
					return op, errValidation("if _id is specified it must not be empty")
				}
			}
		}
	}
	return op, nil
}

func tokenName(v any) string {
	switch v.(type) {
	case string:
		return "VALUE_STRING"
	case json.Number:
		return "VALUE_NUMBER"
	case bool:
		return "VALUE_BOOLEAN"
	case nil:
		return "VALUE_NULL"
	case []any:
		return "START_ARRAY"
	}
	return "START_OBJECT"
}
