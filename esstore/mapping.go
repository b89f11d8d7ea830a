package esstore

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Field is one entry of an index mapping: a leaf field with a type, or an
// object with properties. Only the parameters this store acts on are kept.
type Field struct {
	Type        string            `json:"type,omitempty"`
	Properties  map[string]*Field `json:"properties,omitempty"`
	Fields      map[string]*Field `json:"fields,omitempty"`
	Dynamic     string            `json:"dynamic,omitempty"`
	IgnoreAbove int               `json:"ignore_above,omitempty"`
	Format      string            `json:"format,omitempty"`
}

// Mapping is an index's root mapping.
type Mapping struct {
	Dynamic    string            `json:"dynamic,omitempty"`
	Properties map[string]*Field `json:"properties,omitempty"`
}

var knownTypes = map[string]bool{
	"keyword": true, "text": true, "long": true, "integer": true, "short": true, "byte": true,
	"double": true, "float": true, "half_float": true, "scaled_float": true, "unsigned_long": true,
	"date": true, "date_nanos": true, "boolean": true, "object": true, "nested": true,
}

// parseMapping reads the "mappings" part of a create-index body.
func parseMapping(raw json.RawMessage) (Mapping, *Error) {
	var m Mapping
	if len(raw) == 0 || string(raw) == "null" {
		return m, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return m, errMapperParsing("Failed to parse mapping: " + err.Error())
	}
	var unsupported []string
	for k, v := range top {
		switch k {
		case "dynamic":
			d, e := parseDynamic(v)
			if e != nil {
				return m, e
			}
			m.Dynamic = d
		case "properties":
			props, e := parseProperties(v, "")
			if e != nil {
				return m, e
			}
			m.Properties = props
		case "_source", "_meta", "date_detection", "numeric_detection", "dynamic_templates", "_routing":
			// Accepted and ignored.
		default:
			unsupported = append(unsupported, fmt.Sprintf("%s : %s", k, v))
		}
	}
	if len(unsupported) > 0 {
		slices.Sort(unsupported)
		return m, errMapperParsing("Root mapping definition has unsupported parameters:  [" + strings.Join(unsupported, "] [") + "]")
	}
	return m, nil
}

func parseDynamic(v json.RawMessage) (string, *Error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return "", errMapperParsing("dynamic must be one of [true, false, strict, runtime], got " + string(v))
		}
		s = strconv.FormatBool(b)
	}
	switch s {
	case "true", "false", "strict", "runtime":
		return s, nil
	}
	return "", errMapperParsing("Unknown value [" + s + "] for [dynamic], must be one of [true, false, strict, runtime]")
}

func parseProperties(raw json.RawMessage, parent string) (map[string]*Field, *Error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, errMapperParsing("Failed to parse mapping: properties of [" + parent + "] must be an object")
	}
	out := make(map[string]*Field, len(in))
	for name, v := range in {
		path := join(parent, name)
		f, e := parseField(v, path)
		if e != nil {
			return nil, e
		}
		out[name] = f
	}
	return out, nil
}

func parseField(raw json.RawMessage, path string) (*Field, *Error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, errMapperParsing("Expected map for property [fields] on field [" + path + "] but got a " + string(raw))
	}
	f := &Field{}
	if t, ok := in["type"]; ok {
		if err := json.Unmarshal(t, &f.Type); err != nil {
			return nil, errMapperParsing("No type specified for field [" + path + "]")
		}
		if !knownTypes[f.Type] {
			return nil, errMapperParsing(fmt.Sprintf("No handler for type [%s] declared on field [%s]", f.Type, path))
		}
	}
	if p, ok := in["properties"]; ok {
		if f.Type != "" && f.Type != "object" && f.Type != "nested" {
			return nil, errMapperParsing(fmt.Sprintf("unknown parameter [properties] on mapper [%s] of type [%s]", path, f.Type))
		}
		props, e := parseProperties(p, path)
		if e != nil {
			return nil, e
		}
		f.Properties = props
	}
	if f.Type == "" && f.Properties == nil {
		f.Type = "object"
	}
	if d, ok := in["dynamic"]; ok {
		s, e := parseDynamic(d)
		if e != nil {
			return nil, e
		}
		f.Dynamic = s
	}
	if sub, ok := in["fields"]; ok {
		subs, e := parseProperties(sub, path)
		if e != nil {
			return nil, e
		}
		f.Fields = subs
	}
	if ia, ok := in["ignore_above"]; ok {
		if err := json.Unmarshal(ia, &f.IgnoreAbove); err != nil {
			return nil, errMapperParsing("ignore_above of [" + path + "] must be an integer")
		}
	}
	if fm, ok := in["format"]; ok {
		_ = json.Unmarshal(fm, &f.Format)
	}
	return f, nil
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// maxTermBytes is Lucene's limit on one indexed term; Elasticsearch rejects
// a document with a longer keyword value.
const maxTermBytes = 32766

// term is one indexed keyword value of a document: field path and value.
type term struct{ field, value string }

// docCheck walks one document against the mapping: it rejects what the
// mapping forbids, adds dynamic fields, and collects the keyword values that
// the store indexes for term counts. Nested arrays are flattened, as
// Elasticsearch does.
type docCheck struct {
	id      string
	terms   []term
	changed bool // the mapping gained dynamic fields
}

// apply checks doc against m, growing m when dynamic mapping allows it.
func (m *Mapping) apply(doc map[string]any, id string) ([]term, bool, *Error) {
	if m.Properties == nil {
		m.Properties = map[string]*Field{}
	}
	c := &docCheck{id: id}
	if e := c.object(doc, m.Properties, "", dynamicOr(m.Dynamic, "true")); e != nil {
		return nil, false, e
	}
	return c.terms, c.changed, nil
}

func dynamicOr(d, inherited string) string {
	if d == "" {
		return inherited
	}
	return d
}

func (c *docCheck) object(obj map[string]any, props map[string]*Field, path, dynamic string) *Error {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic errors and dynamic mappings
	for _, k := range keys {
		v := obj[k]
		if k == "" {
			return errDocParse("[1:2] failed to parse: field name cannot be an empty string", nil)
		}
		if strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
			return errDocParse(fmt.Sprintf("[1:2] field name starting or ending with a [.] makes object resolution ambiguous: [%s]", k), nil)
		}
		if strings.TrimSpace(k) == "" {
			return errDocParse("[1:2] failed to parse: field name cannot contain only whitespace: ['"+k+"']", nil)
		}
		if strings.HasPrefix(k, "_") && path == "" {
			return errDocParse(fmt.Sprintf("[1:2] Field [%s] is a metadata field and cannot be added inside a document. Use the index API request parameters.", k), nil)
		}
		if i := strings.IndexByte(k, '.'); i > 0 && i < len(k)-1 {
			// Dotted names are objects: {"a.b": 1} is {"a": {"b": 1}}.
			if e := c.object(map[string]any{k[:i]: map[string]any{k[i+1:]: v}}, props, path, dynamic); e != nil {
				return e
			}
			continue
		}
		full := join(path, k)
		f, ok := props[k]
		if !ok {
			if v == nil {
				continue
			}
			switch dynamic {
			case "strict":
				within := path
				if within == "" {
					within = "_doc"
				}
				return errStrictMapping(k, within)
			case "false":
				continue
			}
			f = infer(v)
			if f == nil {
				continue
			}
			props[k] = f
			c.changed = true
		}
		if e := c.value(v, f, full, dynamic); e != nil {
			return e
		}
	}
	return nil
}

// infer is Elasticsearch's dynamic mapping for a new value.
func infer(v any) *Field {
	switch x := v.(type) {
	case string:
		if isDate(x) {
			return &Field{Type: "date"}
		}
		return &Field{Type: "text", Fields: map[string]*Field{"keyword": {Type: "keyword", IgnoreAbove: 256}}}
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return &Field{Type: "long"}
		}
		return &Field{Type: "float"}
	case bool:
		return &Field{Type: "boolean"}
	case map[string]any:
		return &Field{Type: "object", Properties: map[string]*Field{}}
	case []any:
		for _, e := range x {
			if f := infer(e); f != nil {
				return f
			}
		}
	}
	return nil
}

func (c *docCheck) value(v any, f *Field, path, dynamic string) *Error {
	if v == nil {
		return nil
	}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if e := c.value(e, f, path, dynamic); e != nil {
				return e
			}
		}
		return nil
	}
	if f.Type == "object" || f.Type == "nested" {
		obj, ok := v.(map[string]any)
		if !ok {
			return errDocParse(fmt.Sprintf("[1:2] object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", path, path), nil)
		}
		if f.Properties == nil {
			f.Properties = map[string]*Field{}
		}
		return c.object(obj, f.Properties, path, dynamicOr(f.Dynamic, dynamic))
	}
	if _, ok := v.(map[string]any); ok {
		return c.fail(path, f.Type, v, &Error{Type: "illegal_state_exception", Reason: "Can't get text on a START_OBJECT at 1:2"})
	}
	switch f.Type {
	case "keyword", "text":
		s := scalarString(v)
		if f.Type == "keyword" && f.IgnoreAbove == 0 && len(s) > maxTermBytes {
			return c.fail(path, f.Type, v, &Error{Type: "max_bytes_length_exceeded_exception",
				Reason: fmt.Sprintf("bytes can be at most %d in length; got %d", maxTermBytes, len(s))})
		}
		if f.Type == "keyword" && (f.IgnoreAbove == 0 || len(s) <= f.IgnoreAbove) {
			c.terms = append(c.terms, term{path, s})
		}
		for name, sub := range f.Fields {
			if sub.Type == "keyword" && (sub.IgnoreAbove == 0 || len(s) <= sub.IgnoreAbove) {
				c.terms = append(c.terms, term{path + "." + name, s})
			}
		}
	case "long", "integer", "short", "byte", "unsigned_long":
		if _, err := integerValue(v, f.Type); err != nil {
			return c.fail(path, f.Type, v, err)
		}
	case "double", "float", "half_float", "scaled_float":
		if _, err := floatValue(v); err != nil {
			return c.fail(path, f.Type, v, err)
		}
	case "boolean":
		if _, err := boolValue(v); err != nil {
			return c.fail(path, f.Type, v, err)
		}
	case "date", "date_nanos":
		ok := false
		switch x := v.(type) {
		case string:
			ok = isDate(x) || isEpochMillis(x)
		case json.Number:
			ok = isEpochMillis(x.String())
		}
		if !ok {
			return c.fail(path, f.Type, v, &Error{Type: "illegal_argument_exception",
				Reason: fmt.Sprintf("failed to parse date field [%s] with format [strict_date_optional_time||epoch_millis]", scalarString(v))})
		}
	}
	return nil
}

func (c *docCheck) fail(path, typ string, v any, cause *Error) *Error {
	preview := scalarString(v)
	if _, ok := v.(map[string]any); ok {
		preview = "{...}"
	}
	return errDocParse(fmt.Sprintf("[1:2] failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'",
		path, typ, c.id, preview), cause)
}

// scalarString is the text a keyword field indexes for a JSON scalar.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

var intRange = map[string][2]float64{
	"long": {math.MinInt64, math.MaxInt64}, "integer": {math.MinInt32, math.MaxInt32},
	"short": {math.MinInt16, math.MaxInt16}, "byte": {math.MinInt8, math.MaxInt8},
	"unsigned_long": {0, math.MaxUint64},
}

// integerValue coerces like Elasticsearch does by default: numeric strings
// are accepted and fractions are truncated.
func integerValue(v any, typ string) (float64, *Error) {
	s, ok := numericText(v)
	if !ok {
		return 0, &Error{Type: "illegal_argument_exception", Reason: "For input string: \"" + scalarString(v) + "\""}
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && typ == "long" {
		return float64(i), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &Error{Type: "number_format_exception", Reason: "For input string: \"" + s + "\""}
	}
	f = math.Trunc(f)
	r := intRange[typ]
	if f < r[0] || f > r[1] {
		return 0, &Error{Type: "illegal_argument_exception", Reason: fmt.Sprintf("Value [%s] is out of range for %s %s", s, article(typ), typ)}
	}
	return f, nil
}

func article(typ string) string {
	if strings.IndexByte("aeiou", typ[0]) >= 0 {
		return "an"
	}
	return "a"
}

func floatValue(v any) (float64, *Error) {
	s, ok := numericText(v)
	if !ok {
		return 0, &Error{Type: "illegal_argument_exception", Reason: "For input string: \"" + scalarString(v) + "\""}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &Error{Type: "number_format_exception", Reason: "For input string: \"" + s + "\""}
	}
	return f, nil
}

func numericText(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), true
	case string:
		return strings.TrimSpace(x), true
	}
	return "", false
}

func boolValue(v any) (bool, *Error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch x {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
	}
	return false, &Error{Type: "illegal_argument_exception",
		Reason: "Failed to parse value [" + scalarString(v) + "] as only [true] or [false] are allowed."}
}

// dateRE is strict_date_optional_time: a date, optionally a time with
// fraction of up to nine digits, optionally a zone.
var dateRE = regexp.MustCompile(`^[+-]?\d{4,9}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?)?$`)

func isDate(s string) bool {
	if !dateRE.MatchString(s) {
		return false
	}
	// Reject impossible months, days and hours cheaply.
	if len(s) >= 7 && s[4] == '-' {
		if mo, _ := strconv.Atoi(s[5:7]); mo < 1 || mo > 12 {
			return false
		}
	}
	if len(s) >= 10 && s[4] == '-' {
		if d, _ := strconv.Atoi(s[8:10]); d < 1 || d > 31 {
			return false
		}
	}
	if len(s) >= 13 && s[4] == '-' && s[10] == 'T' {
		if h, _ := strconv.Atoi(s[11:13]); h > 23 {
			return false
		}
	}
	return true
}

func isEpochMillis(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return true
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// lookup finds the mapping of a dotted field path, sub-fields included.
func (m *Mapping) lookup(path string) *Field {
	props := m.Properties
	var f *Field
	parts := strings.Split(path, ".")
	for i, p := range parts {
		next, ok := props[p]
		if !ok && f != nil && f.Fields != nil && i == len(parts)-1 {
			next, ok = f.Fields[p]
		}
		if !ok {
			return nil
		}
		f = next
		props = f.Properties
	}
	return f
}
