package esstore

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is a failure answered the way Elasticsearch 8 answers it:
//
//	{"error":{"root_cause":[{...}],"type":"...","reason":"...",...},"status":N}
//
// Extra holds the additional keys Elasticsearch puts beside type and reason
// (index, index_uuid, shard, resource.id, ...).
type Error struct {
	Status int
	Type   string
	Reason string
	Extra  map[string]any
	// CausedBy is the nested "caused_by" object, when there is one.
	CausedBy *Error
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Reason) }

// object is the error as one JSON object, without root_cause or status.
func (e *Error) object() map[string]any {
	o := make(map[string]any, len(e.Extra)+3)
	for k, v := range e.Extra {
		o[k] = v
	}
	o["type"] = e.Type
	o["reason"] = e.Reason
	if e.CausedBy != nil {
		o["caused_by"] = e.CausedBy.object()
	}
	return o
}

// body is the full HTTP body Elasticsearch sends for this error.
func (e *Error) body() map[string]any {
	root := e.object()
	delete(root, "caused_by")
	top := e.object()
	top["root_cause"] = []any{root}
	return map[string]any{"error": top, "status": e.Status}
}

// MarshalJSON writes the item-level form used inside bulk answers.
func (e *Error) MarshalJSON() ([]byte, error) { return json.Marshal(e.object()) }

func errIndexNotFound(index string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "index_not_found_exception",
		Reason: fmt.Sprintf("no such index [%s]", index),
		Extra: map[string]any{"resource.type": "index_or_alias", "resource.id": index,
			"index_uuid": "_na_", "index": index}}
}

// errIndexNotFoundOnWrite is what Elasticsearch answers a write to a missing
// index when action.auto_create_index is false, which is how this store
// behaves (see README).
func errIndexNotFoundOnWrite(index string) *Error {
	e := errIndexNotFound(index)
	e.Reason = fmt.Sprintf("no such index [%s] and [action.auto_create_index] is [false]", index)
	e.Extra["resource.type"] = "index_expression"
	return e
}

func errIndexExists(index, uuid string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "resource_already_exists_exception",
		Reason: fmt.Sprintf("index [%s/%s] already exists", index, uuid),
		Extra:  map[string]any{"index_uuid": uuid, "index": index}}
}

func errVersionConflict(index, uuid, id string, version uint64) *Error {
	return &Error{Status: http.StatusConflict, Type: "version_conflict_engine_exception",
		Reason: fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", id, version),
		Extra:  map[string]any{"index_uuid": uuid, "shard": "0", "index": index}}
}

func errStrictMapping(field, within string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "strict_dynamic_mapping_exception",
		Reason: fmt.Sprintf("[1:2] mapping set to strict, dynamic introduction of [%s] within [%s] is not allowed", field, within)}
}

func errDocParse(reason string, cause *Error) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "document_parsing_exception", Reason: reason, CausedBy: cause}
}

func errParsing(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "parsing_exception", Reason: reason,
		Extra: map[string]any{"line": 1, "col": 1}}
}

func errIllegalArgument(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "illegal_argument_exception", Reason: reason}
}

func errValidation(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "action_request_validation_exception",
		Reason: "Validation Failed: 1: " + reason + ";"}
}

func errInvalidIndexName(index, why string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_index_name_exception",
		Reason: fmt.Sprintf("Invalid index name [%s], %s", index, why),
		Extra:  map[string]any{"index_uuid": "_na_", "index": index}}
}

func errMapperParsing(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "mapper_parsing_exception", Reason: reason}
}

func errInternal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Type: "exception", Reason: err.Error()}
}
