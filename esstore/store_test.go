package esstore

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func mustCreate(t testing.TB, s *Store, name string) {
	t.Helper()
	m, e := parseMapping([]byte(`{"dynamic":"strict","properties":{"runId":{"type":"keyword"},"jobId":{"type":"long"}}}`))
	if e != nil {
		t.Fatal(e)
	}
	if _, e := s.CreateIndex(name, m, nil); e != nil {
		t.Fatal(e)
	}
}

func put(t testing.TB, s *Store, action, index, id, src string) WriteResult {
	t.Helper()
	res, err := s.WriteDocs([]Write{{Action: action, Index: index, ID: id, Source: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func count(t testing.TB, s *Store, index, run string) int64 {
	t.Helper()
	q := Query{MatchAll: true}
	if run != "" {
		q = Query{Field: "runId", Value: run}
	}
	n, e := s.Count(index, q)
	if e != nil {
		t.Fatal(e)
	}
	return n
}

func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir)
	mustCreate(t, s, "jobs")
	for i := range 10 {
		run := "a"
		if i%2 == 1 {
			run = "b"
		}
		if r := put(t, s, "create", "jobs", fmt.Sprint(i), fmt.Sprintf(`{"runId":%q,"jobId":%d}`, run, i)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	put(t, s, "delete", "jobs", "0", "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	defer s.Close()
	tests := []struct {
		run  string
		want int64
	}{{"a", 4}, {"b", 5}, {"", 9}, {"c", 0}}
	for _, tc := range tests {
		if got := count(t, s, "jobs", tc.run); got != tc.want {
			t.Errorf("after restart, count(%q) = %d, want %d", tc.run, got, tc.want)
		}
	}
	d, found, e := s.Get("jobs", "3")
	if e != nil || !found || string(d.Source) != `{"runId":"b","jobId":3}` {
		t.Fatalf("Get after restart = %s, %v, %v", d.Source, found, e)
	}
	if r := put(t, s, "create", "jobs", "3", `{"runId":"b","jobId":3}`); r.Status != 409 {
		t.Fatalf("create of an existing document after restart: status %d, want 409", r.Status)
	}
	if r := put(t, s, "index", "jobs", "x", `{"runId":"b","extra":1}`); r.Err == nil || r.Err.Type != "strict_dynamic_mapping_exception" {
		t.Fatalf("strict mapping after restart: %+v", r)
	}
	if r := put(t, s, "index", "jobs", "new", `{"runId":"c"}`); r.SeqNo != 11 {
		t.Fatalf("_seq_no after restart = %d, want 11 (10 creates and a delete before)", r.SeqNo)
	}
	if _, e := s.CreateIndex("jobs", Mapping{}, nil); e == nil || e.Type != "resource_already_exists_exception" {
		t.Fatalf("CreateIndex after restart = %v, want resource_already_exists_exception", e)
	}
}

func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	defer s.Close()
	mustCreate(t, s, "jobs")
	const writers, perWriter = 32, 40
	// Every document is written by two writers: one of each pair wins the
	// create, the other gets a conflict.
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				job := (w/2)*perWriter + i
				run := fmt.Sprintf("r%d", job%3)
				res, err := s.WriteDocs([]Write{{Action: "create", Index: "jobs", ID: fmt.Sprint(job),
					Source: fmt.Appendf(nil, `{"runId":%q,"jobId":%d}`, run, job)}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				statuses[res[0].Status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	docs := writers / 2 * perWriter
	if statuses[201] != docs || statuses[409] != docs {
		t.Fatalf("statuses = %v, want %d created and %d conflicts", statuses, docs, docs)
	}
	var sum int64
	for r := range 3 {
		sum += count(t, s, "jobs", fmt.Sprintf("r%d", r))
	}
	if total := count(t, s, "jobs", ""); total != int64(docs) || sum != int64(docs) {
		t.Fatalf("total %d, sum of runs %d, want %d", total, sum, docs)
	}
}

func TestTermKeysDoNotCollide(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	defer s.Close()
	m, _ := parseMapping([]byte(`{"properties":{"a":{"type":"keyword"},"a\u0000b":{"type":"keyword"}}}`))
	if _, e := s.CreateIndex("k", m, nil); e != nil {
		t.Fatal(e)
	}
	put(t, s, "index", "k", "1", `{"a":"b\u0000c"}`)
	put(t, s, "index", "k", "2", `{"a\u0000b":"c"}`)
	for _, q := range []Query{{Field: "a", Value: "b\x00c"}, {Field: "a\x00b", Value: "c"}} {
		if n, _ := s.Count("k", q); n != 1 {
			t.Errorf("count %q=%q: %d, want 1", q.Field, q.Value, n)
		}
	}
}

func TestLongTerms(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	defer s.Close()
	mustCreate(t, s, "jobs")
	long := strings.Repeat("x", 30000)
	if r := put(t, s, "create", "jobs", strings.Repeat("i", 512), `{"runId":"`+long+`"}`); r.Err != nil {
		t.Fatalf("30000-byte keyword: %v", r.Err)
	}
	put(t, s, "create", "jobs", "2", `{"runId":"`+long[:1500]+`"}`)
	if n := count(t, s, "jobs", long); n != 1 {
		t.Fatalf("count of a long run id = %d, want 1", n)
	}
	if n := count(t, s, "jobs", long[:1500]); n != 1 {
		t.Fatalf("count of a 1500-byte run id = %d, want 1", n)
	}
	r := put(t, s, "create", "jobs", "3", `{"runId":"`+strings.Repeat("y", maxTermBytes+1)+`"}`)
	if r.Status != 400 || r.Err.CausedBy == nil || r.Err.CausedBy.Type != "max_bytes_length_exceeded_exception" {
		t.Fatalf("immense keyword: %+v", r)
	}
}
