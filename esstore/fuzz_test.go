package esstore

import (
	"encoding/json"
	"testing"
)

func FuzzParseBulk(f *testing.F) {
	f.Add([]byte("{\"index\":{\"_index\":\"jobs\",\"_id\":\"a-1\"}}\n{\"runId\":\"a\",\"jobId\":1}\n"), "")
	f.Add([]byte("{\"create\":{\"_id\":\"a-1\"}}\n{\"runId\":\"a\"}\n{\"delete\":{\"_id\":\"a-2\"}}\n"), "jobs")
	f.Add([]byte("{\"update\":{\"_id\":1}}\n{\"doc\":{}}\n\n"), "jobs")
	f.Add([]byte("{\"index\":{}}\n{}"), "jobs")
	f.Add([]byte("[]\n"), "")
	f.Fuzz(func(t *testing.T, body []byte, index string) {
		ops, e := ParseBulk(body, index)
		if e != nil {
			if e.Status != 400 || e.Type == "" || e.Reason == "" {
				t.Fatalf("request error %+v is not a 400 with type and reason", e)
			}
			if ops != nil {
				t.Fatal("ops returned with an error")
			}
			return
		}
		if len(ops) == 0 {
			t.Fatal("no ops and no error")
		}
		for _, op := range ops {
			switch op.Action {
			case "index", "create", "update", "delete":
			default:
				t.Fatalf("action %q", op.Action)
			}
			if op.Index == "" || len(op.ID) > maxIDBytes || op.Line < 1 {
				t.Fatalf("op %+v", op)
			}
			if (op.Action == "delete") != (op.Source == nil) {
				t.Fatalf("op %s has source %q", op.Action, op.Source)
			}
		}
	})
}

func FuzzParseCountBody(f *testing.F) {
	f.Add([]byte(`{"query":{"term":{"runId":"r-1"}}}`))
	f.Add([]byte(`{"query":{"term":{"runId":{"value":"r-1","boost":1}}}}`))
	f.Add([]byte(`{"query":{"match_all":{}}}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"query":{"term":{"a":1,"b":2}}}`))
	f.Add([]byte(`{"query":{"bool":{}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		q, e := ParseCountBody(body)
		if e != nil {
			if e.Status != 400 || e.Type == "" {
				t.Fatalf("error %+v is not a 400 with a type", e)
			}
			return
		}
		if q.MatchAll == (q.Field != "") {
			t.Fatalf("query %+v is neither match_all nor a term", q)
		}
		if !q.MatchAll {
			switch q.Value.(type) {
			case string, json.Number, bool:
			default:
				t.Fatalf("term value %#v is not a scalar", q.Value)
			}
		}
	})
}

func FuzzCheckDocument(f *testing.F) {
	f.Add([]byte(`{"runId":"a","jobId":1,"processedAt":"2026-12-03T19:00:00Z"}`))
	f.Add([]byte(`{"a.b":{"c":[1,2,{"d":"x"}]},"e":null}`))
	f.Add([]byte(`{"jobId":"1e400"}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		doc, e := parseSource(src)
		if e != nil {
			return
		}
		strict, _ := parseMapping([]byte(`{"dynamic":"strict","properties":{"runId":{"type":"keyword"},"jobId":{"type":"long"},"processedAt":{"type":"date"}}}`))
		if _, changed, _ := strict.apply(doc, "id"); changed {
			t.Fatal("a strict mapping grew")
		}
		var dyn Mapping
		terms, _, e := dyn.apply(doc, "id")
		if e == nil {
			for _, tm := range terms {
				if dyn.lookup(tm.field) == nil {
					t.Fatalf("term on unmapped field %q", tm.field)
				}
			}
		}
	})
}
