package esstore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store keeps indices and documents in one bbolt file. Writes of concurrent
// requests are committed together (bbolt's db.Batch: one fsync for many
// documents); reads run in parallel with them.
//
// Layout: bucket "indices" holds one bucket per index with the keys "meta"
// (JSON: uuid, mapping, settings), "seq" (next _seq_no) and "count" (number
// of documents), and the buckets "docs" (_id → record), "postings"
// (field,value,_id → nothing: the secondary index of keyword values) and
// "counts" (field,value → number of documents), so a term count is one read.
type Store struct {
	db *bolt.DB

	mu      sync.RWMutex          // guards indices
	indices map[string]*indexMeta // cache of every index's metadata; entries are never mutated, only replaced

	mappingMu sync.Mutex // serialises dynamic mapping updates
}

type indexMeta struct {
	Name     string          `json:"name"`
	UUID     string          `json:"uuid"`
	Created  int64           `json:"created"` // epoch millis
	Mapping  Mapping         `json:"mapping"`
	Settings json.RawMessage `json:"settings,omitempty"`
}

var (
	bucketIndices  = []byte("indices")
	bucketDocs     = []byte("docs")
	bucketPostings = []byte("postings")
	bucketCounts   = []byte("counts")
	keyMeta        = []byte("meta")
	keySeq         = []byte("seq") // next _seq_no
	keyCount       = []byte("count")
)

// StoreOptions tunes Open.
type StoreOptions struct {
	// BatchDelay is how long a write waits for others to share its commit
	// (bbolt MaxBatchDelay). Default 1ms.
	BatchDelay time.Duration
	// BatchSize is the most writes one commit takes (bbolt MaxBatchSize). Default 1000.
	BatchSize int
}

// Open opens (creating when needed) the store in directory dir.
func Open(dir string, opt StoreOptions) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "esstore.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second, // another process holding the file lock
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.MaxBatchDelay = time.Millisecond
	if opt.BatchDelay > 0 {
		db.MaxBatchDelay = opt.BatchDelay
	}
	if opt.BatchSize > 0 {
		db.MaxBatchSize = opt.BatchSize
	}
	s := &Store{db: db, indices: map[string]*indexMeta{}}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketIndices)
		if err != nil {
			return err
		}
		return root.ForEachBucket(func(name []byte) error {
			var m indexMeta
			if err := json.Unmarshal(root.Bucket(name).Get(keyMeta), &m); err != nil {
				return fmt.Errorf("reading metadata of index %s: %w", name, err)
			}
			s.indices[m.Name] = &m
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("loading indices from %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database file.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) meta(index string) *indexMeta {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.indices[index]
}

// validIndexName applies Elasticsearch's rules for index names.
func validIndexName(name string) *Error {
	switch {
	case name == "." || name == "..":
		return errInvalidIndexName(name, "must not be '.' or '..'")
	case name != strings.ToLower(name):
		return errInvalidIndexName(name, "must be lowercase")
	case strings.HasPrefix(name, "_") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+"):
		return errInvalidIndexName(name, "must not start with '_', '-', or '+'")
	case len(name) > 255:
		return errInvalidIndexName(name, "index name is too long, (256 > 255)")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return errInvalidIndexName(name, `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?, :, #]`)
	}
	return nil
}

// CreateIndex creates an index with the given mapping and settings.
func (s *Store) CreateIndex(name string, mapping Mapping, settings json.RawMessage) (*indexMeta, *Error) {
	if e := validIndexName(name); e != nil {
		return nil, e
	}
	m := &indexMeta{Name: name, UUID: randomID(16), Created: time.Now().UnixMilli(), Mapping: mapping, Settings: settings}
	var exists *Error
	err := s.db.Update(func(tx *bolt.Tx) error {
		exists = nil
		root := tx.Bucket(bucketIndices)
		if b := root.Bucket([]byte(name)); b != nil {
			var old indexMeta
			_ = json.Unmarshal(b.Get(keyMeta), &old)
			exists = errIndexExists(name, old.UUID)
			return nil
		}
		b, err := root.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		for _, sub := range [][]byte{bucketDocs, bucketPostings, bucketCounts} {
			if _, err := b.CreateBucket(sub); err != nil {
				return err
			}
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put(keyMeta, raw)
	})
	if err != nil {
		return nil, errInternal(fmt.Errorf("creating index %s: %w", name, err))
	}
	if exists != nil {
		return nil, exists
	}
	s.mu.Lock()
	s.indices[name] = m
	s.mu.Unlock()
	return m, nil
}

// DeleteIndex removes an index and its documents.
func (s *Store) DeleteIndex(name string) *Error {
	var missing bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketIndices)
		if root.Bucket([]byte(name)) == nil {
			missing = true
			return nil
		}
		missing = false
		return root.DeleteBucket([]byte(name))
	})
	if err != nil {
		return errInternal(fmt.Errorf("deleting index %s: %w", name, err))
	}
	if missing {
		return errIndexNotFound(name)
	}
	s.mu.Lock()
	delete(s.indices, name)
	s.mu.Unlock()
	return nil
}

// Write is one document write: index (create or overwrite), create (fail
// when present) or delete.
type Write struct {
	Action string // "index", "create" or "delete"
	Index  string
	ID     string // generated for index/create when empty
	Source []byte
}

// WriteResult is the outcome of one Write, in the shape of Elasticsearch's
// answer.
type WriteResult struct {
	Index   string
	ID      string
	Version uint64
	SeqNo   uint64
	Result  string // created, updated, deleted, not_found
	Status  int
	Err     *Error
}

// prepared is a Write checked against its index's mapping, ready to commit.
type prepared struct {
	w      Write
	source []byte // compacted
	terms  []term
	res    WriteResult
	// rejected is set when the write failed its checks before the commit.
	rejected bool
}

// WriteDocs checks and commits writes in order, in one group commit. A
// failure of one write is its result's Err; the error return is for the
// store itself failing.
func (s *Store) WriteDocs(ws []Write) ([]WriteResult, error) {
	ps := make([]*prepared, len(ws))
	for i, w := range ws {
		ps[i] = s.prepare(w)
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		// db.Batch may run this function more than once: every result is
		// recomputed from the transaction each time.
		root := tx.Bucket(bucketIndices)
		for _, p := range ps {
			if p.rejected {
				continue
			}
			if err := s.commit(root, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("committing %d writes: %w", len(ws), err)
	}
	out := make([]WriteResult, len(ps))
	for i, p := range ps {
		out[i] = p.res
	}
	return out, nil
}

func failed(w Write, e *Error) *prepared {
	return &prepared{w: w, rejected: true, res: WriteResult{Index: w.Index, ID: w.ID, Status: e.Status, Err: e}}
}

func (s *Store) prepare(w Write) *prepared {
	m := s.meta(w.Index)
	if m == nil {
		return failed(w, errIndexNotFoundOnWrite(w.Index))
	}
	if w.Action == "delete" {
		return &prepared{w: w}
	}
	if w.ID == "" {
		w.ID = randomID(15)
	}
	doc, e := parseSource(w.Source)
	if e != nil {
		return failed(w, e)
	}
	mapping := m.Mapping.clone()
	terms, changed, e := mapping.apply(doc, w.ID)
	if e != nil {
		return failed(w, e)
	}
	if changed {
		if terms, e = s.growMapping(w.Index, doc, w.ID); e != nil {
			return failed(w, e)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, w.Source); err != nil {
		return failed(w, errDocParse("[1:1] failed to parse", &Error{Type: "json_parse_exception", Reason: err.Error()}))
	}
	return &prepared{w: w, source: buf.Bytes(), terms: dedupe(terms)}
}

// parseSource decodes a document; it must be one JSON object.
func parseSource(src []byte) (map[string]any, *Error) {
	v, err := decodeValue(src)
	if err != nil {
		return nil, errDocParse("[1:2] failed to parse", &Error{Type: "json_parse_exception", Reason: err.Error()})
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, errDocParse("[1:1] failed to parse: Malformed content, must start with an object", nil)
	}
	return doc, nil
}

// growMapping adds the dynamic fields doc introduces to the index's mapping,
// durably, before the document itself is written (as Elasticsearch updates
// the mapping before indexing).
func (s *Store) growMapping(index string, doc map[string]any, id string) ([]term, *Error) {
	s.mappingMu.Lock()
	defer s.mappingMu.Unlock()
	m := s.meta(index)
	if m == nil {
		return nil, errIndexNotFoundOnWrite(index)
	}
	next := *m
	next.Mapping = m.Mapping.clone()
	terms, changed, e := next.Mapping.apply(doc, id)
	if e != nil || !changed {
		return terms, e
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIndices).Bucket([]byte(index))
		if b == nil {
			return errIndexNotFoundOnWrite(index)
		}
		raw, err := json.Marshal(&next)
		if err != nil {
			return err
		}
		return b.Put(keyMeta, raw)
	})
	if err != nil {
		var ee *Error
		if errors.As(err, &ee) {
			return nil, ee
		}
		return nil, errInternal(fmt.Errorf("updating mapping of %s: %w", index, err))
	}
	s.mu.Lock()
	s.indices[index] = &next
	s.mu.Unlock()
	return terms, nil
}

func (m Mapping) clone() Mapping {
	return Mapping{Dynamic: m.Dynamic, Properties: cloneProps(m.Properties)}
}

func cloneProps(p map[string]*Field) map[string]*Field {
	if p == nil {
		return nil
	}
	out := make(map[string]*Field, len(p))
	for k, f := range p {
		c := *f
		c.Properties = cloneProps(f.Properties)
		c.Fields = cloneProps(f.Fields)
		out[k] = &c
	}
	return out
}

func dedupe(ts []term) []term {
	if len(ts) < 2 {
		return ts
	}
	seen := make(map[term]bool, len(ts))
	out := ts[:0]
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// commit applies one prepared write inside the transaction.
func (s *Store) commit(root *bolt.Bucket, p *prepared) error {
	w := p.w
	p.res = WriteResult{Index: w.Index, ID: w.ID}
	ib := root.Bucket([]byte(w.Index))
	if ib == nil {
		e := errIndexNotFoundOnWrite(w.Index)
		p.res.Status, p.res.Err = e.Status, e
		return nil
	}
	docs := ib.Bucket(bucketDocs)
	id := []byte(w.ID)
	old, hasOld := decodeRecord(docs.Get(id))
	if hasOld && w.Action == "create" {
		m := s.meta(w.Index)
		uuid := ""
		if m != nil {
			uuid = m.UUID
		}
		e := errVersionConflict(w.Index, uuid, w.ID, old.version)
		p.res.Version, p.res.Status, p.res.Err = old.version, e.Status, e
		return nil
	}
	seq := getUint(ib.Get(keySeq)) // the next _seq_no
	count := getUint(ib.Get(keyCount))
	if hasOld {
		if err := removeTerms(ib, id, old.terms); err != nil {
			return err
		}
	}
	if w.Action == "delete" {
		if !hasOld {
			p.res.Result, p.res.Status, p.res.Version = "not_found", 404, 1
			return nil
		}
		if err := docs.Delete(id); err != nil {
			return err
		}
		count--
		p.res.Result, p.res.Status, p.res.Version = "deleted", 200, old.version+1
	} else {
		version := uint64(1)
		p.res.Result, p.res.Status = "created", 201
		if hasOld {
			version = old.version + 1
			p.res.Result, p.res.Status = "updated", 200
		} else {
			count++
		}
		rec := encodeRecord(record{version: version, seqNo: seq, terms: p.terms, source: p.source})
		if err := docs.Put(id, rec); err != nil {
			return err
		}
		if err := addTerms(ib, id, p.terms); err != nil {
			return err
		}
		p.res.Version = version
	}
	p.res.SeqNo = seq
	if err := ib.Put(keySeq, putUint(seq+1)); err != nil {
		return err
	}
	return ib.Put(keyCount, putUint(count))
}

func addTerms(ib *bolt.Bucket, id []byte, terms []term) error {
	postings, counts := ib.Bucket(bucketPostings), ib.Bucket(bucketCounts)
	for _, t := range terms {
		k := termKey(t)
		if err := postings.Put(append(k, id...), nil); err != nil {
			return err
		}
		if err := counts.Put(k, putUint(getUint(counts.Get(k))+1)); err != nil {
			return err
		}
	}
	return nil
}

func removeTerms(ib *bolt.Bucket, id []byte, terms []term) error {
	postings, counts := ib.Bucket(bucketPostings), ib.Bucket(bucketCounts)
	for _, t := range terms {
		k := termKey(t)
		if err := postings.Delete(append(termKey(t), id...)); err != nil {
			return err
		}
		n := getUint(counts.Get(k))
		var err error
		if n <= 1 {
			err = counts.Delete(k)
		} else {
			err = counts.Put(k, putUint(n-1))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// longTerm is the value length from which a key holds the value's SHA-256
// instead of the value, so that keys stay within bbolt's 32 KiB limit.
const longTerm = 1024

// termKey is the length-prefixed field and value, so that no byte inside
// either can make two keys collide.
func termKey(t term) []byte {
	v := t.value
	if len(v) >= longTerm {
		sum := sha256.Sum256([]byte(v))
		v = "\xff\xffsha256:" + string(sum[:]) // a prefix no short value has: its length says it is hashed
	}
	f := t.field
	if len(f) >= longTerm {
		sum := sha256.Sum256([]byte(f))
		f = "\xff\xffsha256:" + string(sum[:])
	}
	k := make([]byte, 0, len(f)+len(v)+8)
	k = binary.AppendUvarint(k, uint64(len(f)))
	k = append(k, f...)
	if len(t.value) >= longTerm {
		k = append(k, 1) // hashed value
	} else {
		k = append(k, 0)
	}
	k = binary.AppendUvarint(k, uint64(len(v)))
	return append(k, v...)
}

// record is a stored document.
type record struct {
	version, seqNo uint64
	terms          []term
	source         []byte
}

func encodeRecord(r record) []byte {
	b := make([]byte, 0, len(r.source)+32)
	b = binary.AppendUvarint(b, r.version)
	b = binary.AppendUvarint(b, r.seqNo)
	b = binary.AppendUvarint(b, uint64(len(r.terms)))
	for _, t := range r.terms {
		b = binary.AppendUvarint(b, uint64(len(t.field)))
		b = append(b, t.field...)
		b = binary.AppendUvarint(b, uint64(len(t.value)))
		b = append(b, t.value...)
	}
	return append(b, r.source...)
}

// decodeRecord reads a record; the bytes belong to bbolt and are copied.
func decodeRecord(b []byte) (record, bool) {
	if b == nil {
		return record{}, false
	}
	var r record
	var n int
	r.version, n = binary.Uvarint(b)
	b = b[n:]
	r.seqNo, n = binary.Uvarint(b)
	b = b[n:]
	nt, n := binary.Uvarint(b)
	b = b[n:]
	str := func() string {
		l, n := binary.Uvarint(b)
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s
	}
	for range nt {
		f := str()
		v := str()
		r.terms = append(r.terms, term{f, v})
	}
	r.source = bytes.Clone(b)
	return r, true
}

func getUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putUint(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// Doc is a stored document as a get answers it.
type Doc struct {
	Version, SeqNo uint64
	Source         json.RawMessage
}

// Get reads one document.
func (s *Store) Get(index, id string) (Doc, bool, *Error) {
	if s.meta(index) == nil {
		return Doc{}, false, errIndexNotFound(index)
	}
	var r record
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketIndices).Bucket([]byte(index))
		if ib == nil {
			return errIndexNotFound(index)
		}
		r, found = decodeRecord(ib.Bucket(bucketDocs).Get([]byte(id)))
		return nil
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return Doc{}, false, e
		}
		return Doc{}, false, errInternal(err)
	}
	return Doc{Version: r.version, SeqNo: r.seqNo, Source: r.source}, found, nil
}

// Count counts the documents of an index that match q. A term on a keyword
// field is one read of the counts bucket; a term on any other field scans the
// documents (this store keeps no index for them).
func (s *Store) Count(index string, q Query) (int64, *Error) {
	m := s.meta(index)
	if m == nil {
		return 0, errIndexNotFound(index)
	}
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketIndices).Bucket([]byte(index))
		if ib == nil {
			return errIndexNotFound(index)
		}
		if q.MatchAll {
			n = getUint(ib.Get(keyCount))
			return nil
		}
		f := m.Mapping.lookup(q.Field)
		switch {
		case f == nil:
			n = 0
		case f.Type == "keyword":
			n = getUint(ib.Bucket(bucketCounts).Get(termKey(term{q.Field, scalarString(q.Value)})))
		default:
			n = scanCount(ib.Bucket(bucketDocs), q, f)
		}
		return nil
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return 0, e
		}
		return 0, errInternal(err)
	}
	return int64(n), nil
}

func scanCount(docs *bolt.Bucket, q Query, f *Field) uint64 {
	var n uint64
	_ = docs.ForEach(func(_, v []byte) error {
		r, _ := decodeRecord(v)
		doc, e := parseSource(r.source)
		if e != nil {
			return nil
		}
		for _, val := range valuesAt(doc, q.Field) {
			if termMatches(f.Type, val, q.Value) {
				n++
				break
			}
		}
		return nil
	})
	return n
}

// valuesAt collects the values at a dotted path, through arrays.
func valuesAt(v any, path string) []any {
	if path == "" {
		if arr, ok := v.([]any); ok {
			var out []any
			for _, e := range arr {
				out = append(out, valuesAt(e, "")...)
			}
			return out
		}
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		head, rest, _ := strings.Cut(path, ".")
		if val, ok := x[path]; ok {
			return valuesAt(val, "")
		}
		return valuesAt(x[head], rest)
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, valuesAt(e, path)...)
		}
		return out
	}
	return nil
}

func termMatches(typ string, docValue, q any) bool {
	if docValue == nil {
		return false
	}
	switch typ {
	case "long", "integer", "short", "byte", "unsigned_long", "double", "float", "half_float", "scaled_float":
		a, e1 := floatValue(docValue)
		b, e2 := floatValue(q)
		if typ != "double" && typ != "float" && typ != "half_float" && typ != "scaled_float" {
			a, e1 = integerValue(docValue, typ)
			b, e2 = integerValue(q, typ)
		}
		return e1 == nil && e2 == nil && a == b
	case "boolean":
		a, e1 := boolValue(docValue)
		b, e2 := boolValue(q)
		return e1 == nil && e2 == nil && a == b
	}
	return scalarString(docValue) == scalarString(q)
}

// randomID is n random bytes in URL-safe base64, like Elasticsearch's ids.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
