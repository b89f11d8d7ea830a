package esstore

import (
	"fmt"
	"net/http"
	"testing"
)

// step is one request of a scripted exchange and what the answer must hold.
type step struct {
	method, path, ctype, body string
	status                    int
	want                      map[string]any // dotted path → value (compared with fmt %v)
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	srv, _ := newServer(t)
	for i, s := range steps {
		status, hdr, out := call(t, srv, s.method, s.path, s.ctype, s.body)
		if hdr.Get("X-Elastic-Product") != "Elasticsearch" {
			t.Errorf("step %d %s %s: X-Elastic-Product = %q", i, s.method, s.path, hdr.Get("X-Elastic-Product"))
		}
		if status != s.status {
			t.Fatalf("step %d %s %s: status %d, want %d; answer %v", i, s.method, s.path, status, s.status, out)
		}
		for k, v := range s.want {
			if got := field(out, k); fmt.Sprint(got) != fmt.Sprint(v) {
				t.Fatalf("step %d %s %s: %s = %v, want %v; answer %v", i, s.method, s.path, k, got, v, out)
			}
		}
	}
}

const js = "application/json"
const nd = "application/x-ndjson"

func TestHandlers(t *testing.T) {
	t.Parallel()
	create := step{"PUT", "/jobs", js, jobsMapping, 200, map[string]any{"acknowledged": true, "index": "jobs"}}
	doc := `{"runId":"a","jobId":1,"processedAt":"2026-12-03T19:00:00.123Z"}`
	tests := []struct {
		name  string
		steps []step
	}{
		{"root info", []step{
			{"GET", "/", "", "", 200, map[string]any{"version.number": Version, "tagline": "You Know, for Search"}},
			{"HEAD", "/", "", "", 200, nil},
		}},
		{"index lifecycle", []step{
			{"HEAD", "/jobs", "", "", 404, nil},
			create,
			{"HEAD", "/jobs", "", "", 200, nil},
			{"PUT", "/jobs", js, jobsMapping, 400, map[string]any{"error.type": "resource_already_exists_exception", "status": 400}},
			{"GET", "/jobs", "", "", 200, map[string]any{"jobs.mappings.dynamic": "strict", "jobs.mappings.properties.runId.type": "keyword"}},
			{"DELETE", "/jobs", "", "", 200, map[string]any{"acknowledged": true}},
			{"GET", "/jobs", "", "", 404, map[string]any{"error.type": "index_not_found_exception", "error.root_cause.0.type": "index_not_found_exception"}},
		}},
		{"bad index definitions", []step{
			{"PUT", "/Jobs", js, "", 400, map[string]any{"error.type": "invalid_index_name_exception"}},
			{"PUT", "/_jobs", js, "", 400, nil},
			{"PUT", "/jobs", js, `{"mappings":{"properties":{"a":{"type":"nope"}}}}`, 400, map[string]any{"error.type": "mapper_parsing_exception"}},
			{"PUT", "/jobs", js, `{"mappings":`, 400, map[string]any{"error.type": "parse_exception"}},
			{"PUT", "/jobs", js, `{"nope":{}}`, 400, map[string]any{"error.type": "parse_exception"}},
		}},
		{"create then conflict", []step{
			create,
			{"PUT", "/jobs/_doc/a-1?op_type=create", js, doc, 201, map[string]any{"result": "created", "_version": 1, "_seq_no": 0, "_shards.successful": 1}},
			{"PUT", "/jobs/_doc/a-1?op_type=create", js, doc, 409, map[string]any{"error.type": "version_conflict_engine_exception", "status": 409}},
			{"PUT", "/jobs/_create/a-1", js, doc, 409, map[string]any{"error.type": "version_conflict_engine_exception"}},
			{"POST", "/jobs/_create/a-2", js, doc, 201, map[string]any{"result": "created", "_seq_no": 1}},
			{"PUT", "/jobs/_doc/a-1", js, doc, 200, map[string]any{"result": "updated", "_version": 2}},
			{"POST", "/jobs/_doc", js, doc, 201, map[string]any{"result": "created"}},
			{"POST", "/jobs/_count", js, "", 200, map[string]any{"count": 3}},
			{"PUT", "/jobs/_doc/a-9?op_type=upsert", js, doc, 400, map[string]any{"error.type": "illegal_argument_exception"}},
			{"PUT", "/jobs/_doc/a-9?if_seq_no=1", js, doc, 400, map[string]any{"error.type": "illegal_argument_exception"}},
		}},
		{"get", []step{
			create,
			{"PUT", "/jobs/_doc/a%2F1", js, doc, 201, map[string]any{"_id": "a/1"}},
			{"GET", "/jobs/_doc/a%2F1", "", "", 200, map[string]any{"found": true, "_source.runId": "a", "_source.jobId": 1, "_version": 1}},
			{"GET", "/jobs/_doc/a%2F1?_source=false", "", "", 200, map[string]any{"found": true, "_source": nil}},
			{"GET", "/jobs/_doc/zz", "", "", 404, map[string]any{"found": false, "_id": "zz"}},
			{"GET", "/nope/_doc/zz", "", "", 404, map[string]any{"error.type": "index_not_found_exception"}},
		}},
		{"write rejections", []step{
			create,
			{"PUT", "/jobs/_doc/x", js, `{"runId":"a","extra":1}`, 400, map[string]any{"error.type": "strict_dynamic_mapping_exception"}},
			{"PUT", "/jobs/_doc/x", js, `{"runId":"a","jobId":"x"}`, 400, map[string]any{"error.type": "document_parsing_exception"}},
			{"PUT", "/jobs/_doc/x", js, `{"runId":"a","processedAt":"yesterday"}`, 400, map[string]any{"error.type": "document_parsing_exception"}},
			{"PUT", "/jobs/_doc/x", js, `{"runId":"a","attempt":3000000000}`, 400, map[string]any{"error.type": "document_parsing_exception"}},
			{"PUT", "/jobs/_doc/x", js, `{"runId":`, 400, map[string]any{"error.type": "document_parsing_exception"}},
			{"PUT", "/jobs/_doc/x", js, `[1]`, 400, map[string]any{"error.type": "document_parsing_exception"}},
			{"PUT", "/jobs/_doc/x", js, `{"_id":"y"}`, 400, map[string]any{"error.type": "document_parsing_exception"}},
			{"PUT", "/jobs/_doc/x", js, ``, 400, map[string]any{"error.type": "action_request_validation_exception"}},
			{"PUT", "/jobs/_doc/x", "text/plain", `{}`, 406, nil},
			{"PUT", "/nope/_doc/x", js, doc, 404, map[string]any{"error.type": "index_not_found_exception"}},
			{"PUT", "/jobs/_doc/x", js, `{"runId":"a","jobId":"12","attempt":1.0,"processedAt":1764788400000}`, 201, nil},
			{"GET", "/jobs/_count", "", "", 200, map[string]any{"count": 1}},
		}},
		{"count", []step{
			create,
			{"PUT", "/jobs/_doc/a-1", js, `{"runId":"a","jobId":1}`, 201, nil},
			{"PUT", "/jobs/_doc/a-2", js, `{"runId":"a","jobId":2}`, 201, nil},
			{"PUT", "/jobs/_doc/b-1", js, `{"runId":"b","jobId":1}`, 201, nil},
			{"POST", "/jobs/_refresh", "", "", 200, map[string]any{"_shards.failed": 0}},
			{"POST", "/jobs/_count", js, `{"query":{"term":{"runId":"a"}}}`, 200, map[string]any{"count": 2, "_shards.total": 1}},
			{"GET", "/jobs/_count", js, `{"query":{"term":{"runId":{"value":"b"}}}}`, 200, map[string]any{"count": 1}},
			{"GET", "/jobs/_count", js, `{"query":{"term":{"runId":"c"}}}`, 200, map[string]any{"count": 0}},
			{"GET", "/jobs/_count", js, `{"query":{"term":{"jobId":1}}}`, 200, map[string]any{"count": 2}},
			{"GET", "/jobs/_count", js, `{"query":{"term":{"unmapped":1}}}`, 200, map[string]any{"count": 0}},
			{"GET", "/jobs/_count", js, `{"query":{"match_all":{}}}`, 200, map[string]any{"count": 3}},
			{"GET", "/jobs/_count", "", "", 200, map[string]any{"count": 3}},
			{"PUT", "/jobs/_doc/a-2", js, `{"runId":"b","jobId":2}`, 200, nil}, // moves a-2 from run a to b
			{"GET", "/jobs/_count", js, `{"query":{"term":{"runId":"a"}}}`, 200, map[string]any{"count": 1}},
			{"GET", "/jobs/_count", js, `{"query":{"term":{"runId":"b"}}}`, 200, map[string]any{"count": 2}},
			{"GET", "/jobs/_count", js, `{"query":{"nope":{}}}`, 400, map[string]any{"error.type": "parsing_exception"}},
			{"GET", "/jobs/_count", js, `{"query":`, 400, map[string]any{"error.type": "parsing_exception"}},
			{"GET", "/jobs/_count", js, `{"size":1}`, 400, map[string]any{"error.type": "parsing_exception"}},
			{"GET", "/nope/_count", "", "", 404, map[string]any{"error.type": "index_not_found_exception"}},
			{"POST", "/nope/_refresh", "", "", 404, map[string]any{"error.type": "index_not_found_exception"}},
		}},
		{"bulk", []step{
			create,
			{"POST", "/_bulk", nd, "{\"index\":{\"_index\":\"jobs\",\"_id\":\"a-1\"}}\n{\"runId\":\"a\",\"jobId\":1}\n{\"create\":{\"_index\":\"jobs\",\"_id\":\"a-1\"}}\n{\"runId\":\"a\",\"jobId\":1}\n{\"create\":{\"_index\":\"nope\",\"_id\":\"a-1\"}}\n{\"runId\":\"a\"}\n{\"delete\":{\"_index\":\"jobs\",\"_id\":\"zz\"}}\n", 200,
				map[string]any{"errors": true, "items.0.index.status": 201, "items.1.create.status": 409,
					"items.1.create.error.type": "version_conflict_engine_exception", "items.2.create.status": 404, "items.3.delete.result": "not_found"}},
			{"POST", "/jobs/_bulk", nd, "{\"create\":{\"_id\":\"a-2\"}}\n{\"runId\":\"a\",\"jobId\":2}\n{\"delete\":{\"_id\":\"a-1\"}}\n{\"index\":{}}\n{\"runId\":\"b\"}\n", 200,
				map[string]any{"errors": false, "items.0.create.result": "created", "items.1.delete.result": "deleted", "items.2.index.status": 201}},
			{"POST", "/jobs/_bulk", nd, "{\"update\":{\"_id\":\"a-2\"}}\n{\"doc\":{}}\n{\"index\":{\"_id\":\"c\"}}\n{\"extra\":1}\n{\"index\":{\"_id\":\"d\"}}\n{bad json\n", 200,
				map[string]any{"errors": true, "items.0.update.status": 400, "items.1.index.error.type": "strict_dynamic_mapping_exception", "items.2.index.error.type": "document_parsing_exception"}},
			{"GET", "/jobs/_count", "", "", 200, map[string]any{"count": 2}},
			{"POST", "/jobs/_bulk", nd, "{\"index\":{}}\n{}", 400, map[string]any{"error.type": "illegal_argument_exception"}},
			{"POST", "/jobs/_bulk", nd, "{\"explode\":{}}\n", 400, map[string]any{"error.type": "illegal_argument_exception"}},
			{"POST", "/_bulk", nd, "{\"index\":{}}\n{}\n", 400, map[string]any{"error.type": "action_request_validation_exception"}},
			{"POST", "/jobs/_bulk", nd, "", 400, map[string]any{"error.type": "action_request_validation_exception"}},
		}},
		{"routing errors", []step{
			{"DELETE", "/jobs/_count", "", "", 405, map[string]any{"status": 405}},
			{"GET", "/_cat/indices", "", "", 400, map[string]any{"status": 400}},
			{"GET", "/jobs/_search", "", "", 400, map[string]any{"status": 400}},
			{"GET", "/jobs/_count?q=runId:a", "", "", 400, map[string]any{"error.type": "illegal_argument_exception"}},
		}},
		{"fault injection (test aid)", []step{
			create,
			{"POST", "/_optio/faults", js, `{"status":429,"count":2,"index":"jobs"}`, 200, nil},
			{"GET", "/_optio/faults", "", "", 200, map[string]any{"faults.0.count": 2}},
			{"GET", "/", "", "", 200, nil}, // root info is never faulted
			{"PUT", "/jobs/_doc/a", js, `{"runId":"a"}`, 429, map[string]any{"error.type": "es_rejected_execution_exception"}},
			{"GET", "/jobs/_count", "", "", 429, nil},
			{"GET", "/jobs/_count", "", "", 200, map[string]any{"count": 0}},
			{"POST", "/_optio/faults", js, `{"status":503,"index":"other"}`, 200, nil},
			{"GET", "/jobs/_count", "", "", 200, nil}, // other index's fault
			{"DELETE", "/_optio/faults?index=other", "", "", 200, nil},
			{"GET", "/_optio/faults", "", "", 200, map[string]any{"faults": "[]"}},
			{"POST", "/_optio/faults", js, `{"status":200}`, 400, nil},
			{"POST", "/_optio/faults", js, `{"nope":1}`, 400, nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runSteps(t, tc.steps)
		})
	}
}

func TestDynamicMapping(t *testing.T) {
	t.Parallel()
	runSteps(t, []step{
		{"PUT", "/free", js, "", 200, nil},
		{"PUT", "/free/_doc/1", js, `{"runId":"a","n":1,"at":"2026-01-02T03:04:05Z","o":{"k":"v"}}`, 201, nil},
		{"GET", "/free", "", "", 200, map[string]any{
			"free.mappings.properties.runId.type": "text", "free.mappings.properties.runId.fields.keyword.type": "keyword",
			"free.mappings.properties.n.type": "long", "free.mappings.properties.at.type": "date",
			"free.mappings.properties.o.properties.k.type": "text"}},
		{"GET", "/free/_count", js, `{"query":{"term":{"runId.keyword":"a"}}}`, 200, map[string]any{"count": 1}},
		{"GET", "/free/_count", js, `{"query":{"term":{"o.k.keyword":"v"}}}`, 200, map[string]any{"count": 1}},
		{"PUT", "/free/_doc/2", js, `{"n":"not a number"}`, 400, map[string]any{"error.type": "document_parsing_exception"}},
		{"PUT", "/off", js, `{"mappings":{"dynamic":false,"properties":{"runId":{"type":"keyword"}}}}`, 200, nil},
		{"PUT", "/off/_doc/1", js, `{"runId":"a","anything":{"x":1}}`, 201, nil},
		{"GET", "/off/_mapping", "", "", 200, map[string]any{"off.mappings.properties.anything": nil}},
	})
}

func TestEveryAnswerNamesTheProduct(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	for _, r := range []struct{ method, path string }{
		{"GET", "/"}, {"HEAD", "/x"}, {"GET", "/x/_doc/1"}, {"PATCH", "/x"}, {"GET", "/_nope"}, {"GET", "/_optio/nope"},
	} {
		_, hdr, _ := call(t, srv, r.method, r.path, "", "")
		if hdr.Get("X-Elastic-Product") != "Elasticsearch" {
			t.Errorf("%s %s: no X-Elastic-Product header", r.method, r.path)
		}
	}
	_ = http.MethodGet
}
