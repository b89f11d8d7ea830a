package esstore

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is the Elasticsearch version this store answers as.
const Version = "8.19.7"

// maxBody is Elasticsearch's default http.max_content_length.
const maxBody = 100 << 20

// Handler serves the subset of the Elasticsearch 8 REST API that Optio
// uses, over a Store. Every answer carries X-Elastic-Product: Elasticsearch,
// which the official clients check.
type Handler struct {
	store  *Store
	log    *slog.Logger
	faults faults
	start  time.Time
}

// NewHandler serves store. faults are the test-aid faults pending at start.
func NewHandler(store *Store, log *slog.Logger, initial []Fault) (*Handler, error) {
	h := &Handler{store: store, log: log, start: time.Now()}
	for _, f := range initial {
		if err := h.faults.add(f); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// request is one parsed HTTP request.
type request struct {
	method string
	path   string
	segs   []string
	query  url.Values
	body   []byte
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	ct := "application/json"
	if strings.Contains(r.Header.Get("Accept"), "vnd.elasticsearch+json") {
		ct = "application/vnd.elasticsearch+json;compatible-with=8"
	}
	w.Header().Set("Content-Type", ct)

	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		h.noHandler(w, r)
		return
	}
	if len(segs) > 0 && segs[0] == "_optio" {
		h.admin(w, r, segs)
		return
	}
	if len(segs) > 0 { // GET / (the client's first request) is never faulted
		if f, ok := h.faults.take(r.Method, segs[0]); ok {
			if h.fault(w, r, f) {
				return
			}
		}
	}
	body, e := readBody(r)
	if e != nil {
		h.writeError(w, e)
		return
	}
	req := &request{method: r.Method, path: r.URL.Path, segs: segs, query: r.URL.Query(), body: body}
	if len(body) > 0 {
		if msg := checkContentType(r.Header.Get("Content-Type")); msg != "" {
			h.writeJSON(w, http.StatusNotAcceptable, map[string]any{"error": msg, "status": http.StatusNotAcceptable})
			return
		}
	}
	h.route(w, req)
}

// fault applies an injected fault; it reports whether the request is done.
func (h *Handler) fault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.DelayMs > 0 {
		select {
		case <-time.After(time.Duration(f.DelayMs) * time.Millisecond):
		case <-r.Context().Done():
			return true
		}
	}
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	if f.Status != 0 {
		h.writeError(w, injected(f.Status))
		return true
	}
	return false
}

func splitPath(escaped string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(escaped, "/") {
		if s == "" {
			continue
		}
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		segs = append(segs, u)
	}
	return segs, nil
}

func readBody(r *http.Request) ([]byte, *Error) {
	if r.Body == nil {
		return nil, nil
	}
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, maxBody)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(rd)
		if err != nil {
			return nil, &Error{Status: 400, Type: "parse_exception", Reason: "request body is not gzip: " + err.Error()}
		}
		defer gz.Close()
		rd = io.LimitReader(gz, maxBody+1)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Type: "content_too_long_exception",
				Reason: "request content is larger than [100mb]"}
		}
		return nil, &Error{Status: 400, Type: "parse_exception", Reason: "reading request body: " + err.Error()}
	}
	if len(b) > maxBody {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Type: "content_too_long_exception",
			Reason: "request content is larger than [100mb]"}
	}
	return b, nil
}

func checkContentType(v string) string {
	if v == "" {
		return "" // Elasticsearch guesses JSON; so do we
	}
	mt, _, err := mime.ParseMediaType(v)
	switch {
	case err != nil:
	case mt == "application/json", mt == "application/x-ndjson",
		mt == "application/vnd.elasticsearch+json", mt == "application/vnd.elasticsearch+x-ndjson":
		return ""
	}
	return fmt.Sprintf("Content-Type header [%s] is not supported", v)
}

// route dispatches on the path segments.
func (h *Handler) route(w http.ResponseWriter, r *request) {
	s := r.segs
	switch {
	case len(s) == 0:
		h.methods(w, r, map[string]func(){"GET": func() { h.root(w, r) }, "HEAD": func() { h.root(w, r) }})
	case len(s) == 1 && s[0] == "_bulk":
		h.methods(w, r, map[string]func(){"POST": func() { h.bulk(w, r, "") }, "PUT": func() { h.bulk(w, r, "") }})
	case strings.HasPrefix(s[0], "_"):
		h.noHandlerFor(w, r.path, r.method)
	case len(s) == 1:
		h.methods(w, r, map[string]func(){
			"PUT": func() { h.createIndex(w, r) }, "HEAD": func() { h.indexExists(w, r) },
			"GET": func() { h.getIndex(w, r) }, "DELETE": func() { h.deleteIndex(w, r) },
		})
	case len(s) == 2 && s[1] == "_doc":
		h.methods(w, r, map[string]func(){"POST": func() { h.write(w, r, "index", "") }})
	case len(s) == 3 && s[1] == "_doc":
		h.methods(w, r, map[string]func(){
			"PUT": func() { h.write(w, r, "", s[2]) }, "POST": func() { h.write(w, r, "", s[2]) },
			"GET": func() { h.get(w, r, s[2]) }, "HEAD": func() { h.get(w, r, s[2]) },
			"DELETE": func() { h.write(w, r, "delete", s[2]) },
		})
	case len(s) == 3 && s[1] == "_create":
		h.methods(w, r, map[string]func(){
			"PUT": func() { h.write(w, r, "create", s[2]) }, "POST": func() { h.write(w, r, "create", s[2]) },
		})
	case len(s) == 2 && s[1] == "_bulk":
		h.methods(w, r, map[string]func(){"POST": func() { h.bulk(w, r, s[0]) }, "PUT": func() { h.bulk(w, r, s[0]) }})
	case len(s) == 2 && s[1] == "_count":
		h.methods(w, r, map[string]func(){"GET": func() { h.count(w, r) }, "POST": func() { h.count(w, r) }})
	case len(s) == 2 && s[1] == "_refresh":
		h.methods(w, r, map[string]func(){"GET": func() { h.refresh(w, r) }, "POST": func() { h.refresh(w, r) }})
	case len(s) == 2 && s[1] == "_mapping":
		h.methods(w, r, map[string]func(){"GET": func() { h.getMapping(w, r) }})
	default:
		h.noHandlerFor(w, r.path, r.method)
	}
}

func (h *Handler) methods(w http.ResponseWriter, r *request, byMethod map[string]func()) {
	if f, ok := byMethod[r.method]; ok {
		f()
		return
	}
	allowed := sortedKeys(byMethod)
	h.writeJSON(w, http.StatusMethodNotAllowed, map[string]any{
		"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", r.path, r.method, strings.Join(allowed, ", ")),
		"status": http.StatusMethodNotAllowed,
	})
}

func (h *Handler) noHandler(w http.ResponseWriter, r *http.Request) {
	h.noHandlerFor(w, r.URL.Path, r.Method)
}

func (h *Handler) noHandlerFor(w http.ResponseWriter, path, method string) {
	h.writeJSON(w, http.StatusBadRequest, map[string]any{
		"error":  fmt.Sprintf("no handler found for uri [%s] and method [%s]", path, method),
		"status": http.StatusBadRequest,
	})
}

// commonParams are accepted by every endpoint.
var commonParams = []string{"pretty", "human", "error_trace", "filter_path"}

// params rejects query parameters the endpoint does not know, as
// Elasticsearch does; it reports whether the request may go on.
func (h *Handler) params(w http.ResponseWriter, r *request, known ...string) bool {
	for k := range r.query {
		if !slices.Contains(known, k) && !slices.Contains(commonParams, k) {
			h.writeError(w, errIllegalArgument(fmt.Sprintf("request [%s] contains unrecognized parameter: [%s]", r.path, k)))
			return false
		}
	}
	if v := r.query.Get("refresh"); r.query.Has("refresh") && v != "" && v != "true" && v != "false" && v != "wait_for" {
		h.writeError(w, errIllegalArgument(fmt.Sprintf("Unknown value for refresh: [%s].", v)))
		return false
	}
	return true
}

func (h *Handler) root(w http.ResponseWriter, r *request) {
	h.writeJSON(w, http.StatusOK, map[string]any{
		"name":         "optio-esstore",
		"cluster_name": "optio-esstore",
		"cluster_uuid": "optio-esstore-stand-in",
		"version": map[string]any{
			"number":                              Version,
			"build_flavor":                        "optio-esstore",
			"build_type":                          "optio-esstore",
			"build_hash":                          "none",
			"build_date":                          h.start.UTC().Format(time.RFC3339),
			"build_snapshot":                      false,
			"lucene_version":                      "none",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	})
}

func (h *Handler) createIndex(w http.ResponseWriter, r *request) {
	if !h.params(w, r, "wait_for_active_shards", "timeout", "master_timeout") {
		return
	}
	name := r.segs[0]
	var body struct {
		Mappings json.RawMessage `json:"mappings"`
		Settings json.RawMessage `json:"settings"`
		Aliases  json.RawMessage `json:"aliases"`
	}
	if len(bytes.TrimSpace(r.body)) > 0 {
		var top map[string]json.RawMessage
		if err := decodeStrict(r.body, &top); err != nil {
			h.writeError(w, &Error{Status: 400, Type: "parse_exception", Reason: "Failed to parse content to map",
				CausedBy: &Error{Type: "json_parse_exception", Reason: err.Error()}})
			return
		}
		for k, v := range top {
			switch k {
			case "mappings":
				body.Mappings = v
			case "settings":
				body.Settings = v
			case "aliases":
				body.Aliases = v
			default:
				h.writeError(w, &Error{Status: 400, Type: "parse_exception", Reason: fmt.Sprintf("unknown key [%s] for create index", k)})
				return
			}
		}
	}
	mapping, e := parseMapping(body.Mappings)
	if e != nil {
		h.writeError(w, e)
		return
	}
	if _, e := h.store.CreateIndex(name, mapping, body.Settings); e != nil {
		h.writeError(w, e)
		return
	}
	h.log.Info("index created", "index", name)
	h.writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

func (h *Handler) indexExists(w http.ResponseWriter, r *request) {
	if h.store.meta(r.segs[0]) == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) getIndex(w http.ResponseWriter, r *request) {
	m := h.store.meta(r.segs[0])
	if m == nil {
		h.writeError(w, errIndexNotFound(r.segs[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, map[string]any{m.Name: map[string]any{
		"aliases":  map[string]any{},
		"mappings": m.Mapping,
		"settings": map[string]any{"index": map[string]any{
			"creation_date":      strconv.FormatInt(m.Created, 10),
			"number_of_shards":   "1",
			"number_of_replicas": "1",
			"uuid":               m.UUID,
			"provided_name":      m.Name,
			"version":            map[string]any{"created": "8512000"},
		}},
	}})
}

func (h *Handler) getMapping(w http.ResponseWriter, r *request) {
	m := h.store.meta(r.segs[0])
	if m == nil {
		h.writeError(w, errIndexNotFound(r.segs[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, map[string]any{m.Name: map[string]any{"mappings": m.Mapping}})
}

func (h *Handler) deleteIndex(w http.ResponseWriter, r *request) {
	if !h.params(w, r, "timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards") {
		return
	}
	if e := h.store.DeleteIndex(r.segs[0]); e != nil {
		h.writeError(w, e)
		return
	}
	h.log.Info("index deleted", "index", r.segs[0])
	h.writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
}

var writeParams = []string{"op_type", "refresh", "routing", "timeout", "wait_for_active_shards", "require_alias", "require_data_stream", "pipeline"}

// write serves index (action ""/"index": op_type decides), create and delete.
func (h *Handler) write(w http.ResponseWriter, r *request, action, id string) {
	if !h.params(w, r, writeParams...) {
		return
	}
	if action == "" {
		action = "index"
		switch op := r.query.Get("op_type"); op {
		case "", "index":
		case "create":
			action = "create"
		default:
			h.writeError(w, errIllegalArgument(fmt.Sprintf("opType must be 'create' or 'index', found: [%s]", op)))
			return
		}
	}
	if len(id) > maxIDBytes {
		h.writeError(w, errValidation(fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", id, len(id))))
		return
	}
	if action != "delete" && len(bytes.TrimSpace(r.body)) == 0 {
		h.writeError(w, errValidation("source is missing"))
		return
	}
	res, err := h.store.WriteDocs([]Write{{Action: action, Index: r.segs[0], ID: id, Source: r.body}})
	if err != nil {
		h.writeError(w, errInternal(err))
		return
	}
	wr := res[0]
	if wr.Err != nil {
		h.writeError(w, wr.Err)
		return
	}
	if wr.Status == http.StatusCreated {
		w.Header().Set("Location", "/"+url.PathEscape(wr.Index)+"/_doc/"+url.PathEscape(wr.ID))
	}
	h.writeJSON(w, wr.Status, writeBody(wr))
}

func writeBody(wr WriteResult) map[string]any {
	return map[string]any{
		"_index": wr.Index, "_id": wr.ID, "_version": wr.Version, "result": wr.Result,
		"_shards": map[string]any{"total": 2, "successful": 1, "failed": 0},
		"_seq_no": wr.SeqNo, "_primary_term": 1,
	}
}

func (h *Handler) get(w http.ResponseWriter, r *request, id string) {
	if !h.params(w, r, "realtime", "refresh", "routing", "preference", "_source") {
		return
	}
	index := r.segs[0]
	doc, found, e := h.store.Get(index, id)
	if e != nil {
		h.writeError(w, e)
		return
	}
	if !found {
		h.writeJSON(w, http.StatusNotFound, map[string]any{"_index": index, "_id": id, "found": false})
		return
	}
	out := map[string]any{"_index": index, "_id": id, "_version": doc.Version, "_seq_no": doc.SeqNo,
		"_primary_term": 1, "found": true}
	if src := r.query.Get("_source"); src != "false" {
		out["_source"] = doc.Source
	}
	h.writeJSON(w, http.StatusOK, out)
}

func (h *Handler) count(w http.ResponseWriter, r *request) {
	if !h.params(w, r, "ignore_unavailable", "allow_no_indices", "expand_wildcards", "routing", "preference", "ignore_throttled") {
		return
	}
	q, e := ParseCountBody(r.body)
	if e != nil {
		h.writeError(w, e)
		return
	}
	n, e := h.store.Count(r.segs[0], q)
	if e != nil {
		h.writeError(w, e)
		return
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"count": n,
		"_shards": map[string]any{"total": 1, "successful": 1, "skipped": 0, "failed": 0}})
}

// refresh answers as Elasticsearch does; every write is visible at once
// here, so there is nothing to do.
func (h *Handler) refresh(w http.ResponseWriter, r *request) {
	if !h.params(w, r, "ignore_unavailable", "allow_no_indices", "expand_wildcards") {
		return
	}
	if h.store.meta(r.segs[0]) == nil {
		h.writeError(w, errIndexNotFound(r.segs[0]))
		return
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"_shards": map[string]any{"total": 2, "successful": 1, "failed": 0}})
}

func (h *Handler) bulk(w http.ResponseWriter, r *request, index string) {
	if !h.params(w, r, "refresh", "routing", "timeout", "wait_for_active_shards", "pipeline", "require_alias", "require_data_stream", "_source") {
		return
	}
	start := time.Now()
	ops, e := ParseBulk(r.body, index)
	if e != nil {
		h.writeError(w, e)
		return
	}
	var writes []Write
	var slot []int // index into writes per op, -1 for unsupported
	for _, op := range ops {
		if op.Action == "update" {
			slot = append(slot, -1)
			continue
		}
		slot = append(slot, len(writes))
		writes = append(writes, Write{Action: op.Action, Index: op.Index, ID: op.ID, Source: op.Source})
	}
	res, err := h.store.WriteDocs(writes)
	if err != nil {
		h.writeError(w, errInternal(err))
		return
	}
	items := make([]any, len(ops))
	hasErrors := false
	for i, op := range ops {
		var item map[string]any
		if slot[i] < 0 {
			e := errIllegalArgument("update is not supported by the optio-esstore stand-in")
			item = map[string]any{"_index": op.Index, "_id": op.ID, "status": e.Status, "error": e}
			hasErrors = true
		} else {
			wr := res[slot[i]]
			if wr.Err != nil {
				item = map[string]any{"_index": wr.Index, "_id": wr.ID, "status": wr.Status, "error": wr.Err}
				hasErrors = true
			} else {
				item = writeBody(wr)
				item["status"] = wr.Status
			}
		}
		items[i] = map[string]any{op.Action: item}
	}
	h.writeJSON(w, http.StatusOK, map[string]any{"errors": hasErrors, "took": time.Since(start).Milliseconds(), "items": items})
}

// admin serves /_optio/faults, the fault-injection test aid.
func (h *Handler) admin(w http.ResponseWriter, r *http.Request, segs []string) {
	if len(segs) != 2 || segs[1] != "faults" {
		h.noHandler(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.writeJSON(w, http.StatusOK, map[string]any{"faults": h.faults.snapshot()})
	case http.MethodDelete:
		h.faults.clear(r.URL.Query().Get("index"))
		h.writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	case http.MethodPost:
		body, e := readBody(r)
		if e != nil {
			h.writeError(w, e)
			return
		}
		var f Fault
		if err := decodeStrict(body, &f); err != nil {
			h.writeError(w, &Error{Status: 400, Type: "parse_exception", Reason: "fault is not a JSON object: " + err.Error()})
			return
		}
		if err := h.faults.add(f); err != nil {
			h.writeError(w, errIllegalArgument(err.Error()))
			return
		}
		h.log.Warn("fault injected (test aid)", "status", f.Status, "count", f.Count, "delay_ms", f.DelayMs, "drop", f.Drop, "index", f.Index)
		h.writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	default:
		h.writeJSON(w, http.StatusMethodNotAllowed, map[string]any{
			"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [DELETE, GET, POST]", r.URL.Path, r.Method),
			"status": http.StatusMethodNotAllowed,
		})
	}
}

func (h *Handler) writeError(w http.ResponseWriter, e *Error) {
	if e.Status >= 500 && e.Type != "optio_injected_fault" && !strings.Contains(e.Reason, "injected") {
		h.log.Error("request failed", "status", e.Status, "type", e.Type, "reason", e.Reason)
	}
	h.writeJSON(w, e.Status, e.body())
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("encoding answer", "err", err)
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encoding answer failed","status":500}`)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
