// Package index writes and reads Optio's job documents in Elasticsearch (or
// the local stand-in, optio-esstore): one document per processed job, with
// an _id derived from run and job id so that writing a job twice leaves one
// document.
package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Doc is the document of one processed job.
type Doc struct {
	RunID       string    `json:"runId"`
	JobID       int64     `json:"jobId"`
	ProcessedAt time.Time `json:"processedAt"`
	ReleasedAt  time.Time `json:"releasedAt"`
	Attempt     int       `json:"attempt"`
	DurationMs  float64   `json:"durationMs"`
}

// DocID is the document _id of a job: "<runId>-<jobId>". (esapi puts ids
// into the URL path as they are, so this package escapes them.)
func DocID(runID string, jobID int64) string {
	return runID + "-" + strconv.FormatInt(jobID, 10)
}

// Mapping is the index's explicit mapping; dynamic: strict rejects any field
// not listed.
const Mapping = `{
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "runId":       {"type": "keyword"},
      "jobId":       {"type": "long"},
      "processedAt": {"type": "date"},
      "releasedAt":  {"type": "date"},
      "attempt":     {"type": "integer"},
      "durationMs":  {"type": "float"}
    }
  }
}`

// Config says where the index is and how to reach it.
type Config struct {
	// URL locates Elasticsearch or optio-esstore (ES_URL). Required.
	URL string
	// Username and Password authenticate with HTTP Basic auth (ES_USERNAME,
	// ES_PASSWORD). Default none.
	Username, Password string
	// Index is the index name (OPTIO_INDEX). Default "optio_jobs".
	Index string
	// Transport carries the requests. Default: an http.Transport tuned for
	// many concurrent small writes (keep-alive, 256 idle connections per host).
	Transport http.RoundTripper
	// MaxRetries is how often a retryable failure (429, 502, 503, 504, a
	// connection error) is retried inside one call, with jittered
	// exponential backoff from 50ms. Default 3; negative disables retries.
	MaxRetries int
	// Timeout bounds each call when ctx has no deadline. Default 30s.
	Timeout time.Duration
}

func (c Config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("ES_URL=%q is not a URL with a scheme and a host", c.URL)
	}
	if c.Index == "" {
		return errors.New("OPTIO_INDEX is empty")
	}
	return nil
}

// Index is a client of one Elasticsearch index. It is safe for concurrent use.
type Index struct {
	es        *elasticsearch.Client
	name      string
	timeout   time.Duration
	transport http.RoundTripper
}

// NewTransport is the default HTTP transport: keep-alive with enough idle
// connections per host that ~2000 writes/s from many goroutines reuse
// connections instead of opening new ones.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// New makes a client of the index cfg.Index at cfg.URL. It does not contact
// the server.
func New(cfg Config) (*Index, error) {
	if cfg.Index == "" {
		cfg.Index = "optio_jobs"
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = 3
	}
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:     []string{cfg.URL},
		Username:      cfg.Username,
		Password:      cfg.Password,
		Transport:     cfg.Transport,
		DisableRetry:  retries < 0,
		MaxRetries:    max(retries, 0),
		RetryOnStatus: []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		RetryOnError: func(req *http.Request, err error) bool {
			return req.Context().Err() == nil && retryableTransport(err)
		},
		RetryBackoff: backoff,
	})
	if err != nil {
		return nil, fmt.Errorf("creating Elasticsearch client for %s: %w", cfg.URL, err)
	}
	return &Index{es: es, name: cfg.Index, timeout: cfg.Timeout, transport: cfg.Transport}, nil
}

// Close releases the idle connections of the transport (when it can); calls
// in flight are not affected.
func (ix *Index) Close() {
	if t, ok := ix.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// backoff is 50ms·2^(attempt-1), capped at 2s, with full jitter.
func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt-1, 6)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// Name is the index name.
func (ix *Index) Name() string { return ix.name }

// Client is the underlying go-elasticsearch client, for requests this
// package does not wrap (tests use it for _bulk).
func (ix *Index) Client() *elasticsearch.Client { return ix.es }

func (ix *Index) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, ix.timeout)
}

// EnsureIndex creates the index with Mapping unless it exists. An index
// created meanwhile by someone else is fine, as long as its mapping has
// runId as keyword and jobId as long (what counting relies on).
func (ix *Index) EnsureIndex(ctx context.Context) error {
	ctx, cancel := ix.ctx(ctx)
	defer cancel()
	res, err := esapi.IndicesCreateRequest{Index: ix.name, Body: bytes.NewReader([]byte(Mapping))}.Do(ctx, ix.es)
	e := answer("creating index "+ix.name, res, err, nil)
	if e == nil {
		return nil
	}
	var ee *Error
	if !errors.As(e, &ee) || ee.Type != "resource_already_exists_exception" {
		return e
	}
	return ix.checkMapping(ctx)
}

func (ix *Index) checkMapping(ctx context.Context) error {
	var got map[string]struct {
		Mappings struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"mappings"`
	}
	res, err := esapi.IndicesGetRequest{Index: []string{ix.name}}.Do(ctx, ix.es)
	if err := answer("reading mapping of index "+ix.name, res, err, &got); err != nil {
		return err
	}
	props := got[ix.name].Mappings.Properties
	for field, want := range map[string]string{"runId": "keyword", "jobId": "long"} {
		if props[field].Type != want {
			return fmt.Errorf("index %s exists with field %s of type %q, want %q: delete it or use another OPTIO_INDEX", ix.name, field, props[field].Type, want)
		}
	}
	return nil
}

// Put writes the document of one job with op_type=create. It reports
// created=false, and no error, when the document was already there (a
// redelivered job). Any other failure is an *Error; see IsRetryable.
func (ix *Index) Put(ctx context.Context, d Doc) (created bool, err error) {
	body, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("encoding document of run %s job %d: %w", d.RunID, d.JobID, err)
	}
	ctx, cancel := ix.ctx(ctx)
	defer cancel()
	id := DocID(d.RunID, d.JobID)
	res, err := esapi.IndexRequest{Index: ix.name, DocumentID: url.PathEscape(id), OpType: "create", Body: bytes.NewReader(body)}.Do(ctx, ix.es)
	e := answer("writing document "+id, res, err, nil)
	if e == nil {
		return true, nil
	}
	var ee *Error
	if errors.As(e, &ee) && ee.Status == http.StatusConflict && ee.Type == "version_conflict_engine_exception" {
		return false, nil
	}
	return false, e
}

// Get reads the document of one job; found is false when there is none.
func (ix *Index) Get(ctx context.Context, runID string, jobID int64) (Doc, bool, error) {
	ctx, cancel := ix.ctx(ctx)
	defer cancel()
	id := DocID(runID, jobID)
	var got struct {
		Found  bool `json:"found"`
		Source *Doc `json:"_source"`
	}
	res, err := esapi.GetRequest{Index: ix.name, DocumentID: url.PathEscape(id)}.Do(ctx, ix.es)
	if err == nil && res.StatusCode == http.StatusNotFound {
		// 404 is either "no such document" (found:false) or an error
		// such as a missing index.
		b, rerr := readAll(res)
		if rerr == nil && json.Unmarshal(b, &got) == nil && !got.Found && !bytes.Contains(b, []byte(`"error"`)) {
			return Doc{}, false, nil
		}
		return Doc{}, false, errorFrom("reading document "+id, res.StatusCode, b)
	}
	if err := answer("reading document "+id, res, err, &got); err != nil {
		return Doc{}, false, err
	}
	if !got.Found || got.Source == nil {
		return Doc{}, false, nil
	}
	return *got.Source, true, nil
}

// Refresh makes every write so far visible to Count.
func (ix *Index) Refresh(ctx context.Context) error {
	ctx, cancel := ix.ctx(ctx)
	defer cancel()
	res, err := esapi.IndicesRefreshRequest{Index: []string{ix.name}}.Do(ctx, ix.es)
	return answer("refreshing index "+ix.name, res, err, nil)
}

// Count refreshes the index, then counts the documents of one run.
func (ix *Index) Count(ctx context.Context, runID string) (int64, error) {
	if err := ix.Refresh(ctx); err != nil {
		return 0, err
	}
	ctx, cancel := ix.ctx(ctx)
	defer cancel()
	q, err := json.Marshal(map[string]any{"query": map[string]any{"term": map[string]any{"runId": map[string]any{"value": runID}}}})
	if err != nil {
		return 0, fmt.Errorf("encoding count query: %w", err)
	}
	var got struct {
		Count *int64 `json:"count"`
	}
	res, err := esapi.CountRequest{Index: []string{ix.name}, Body: bytes.NewReader(q)}.Do(ctx, ix.es)
	if err := answer("counting documents of run "+runID, res, err, &got); err != nil {
		return 0, err
	}
	if got.Count == nil {
		return 0, fmt.Errorf("counting documents of run %s: answer has no count", runID)
	}
	return *got.Count, nil
}

// answer turns a response into nil (2xx, body decoded into out when out is
// not nil) or an *Error, and always drains and closes the body so the
// connection is reused.
func answer(doing string, res *esapi.Response, err error, out any) error {
	if err != nil {
		return &Error{Op: doing, Err: err}
	}
	b, rerr := readAll(res)
	if rerr != nil {
		return &Error{Op: doing, Status: res.StatusCode, Err: fmt.Errorf("reading answer: %w", rerr)}
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return errorFrom(doing, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return &Error{Op: doing, Status: res.StatusCode, Err: fmt.Errorf("decoding answer: %w", err)}
		}
	}
	return nil
}

func readAll(res *esapi.Response) ([]byte, error) {
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return b, err
}
