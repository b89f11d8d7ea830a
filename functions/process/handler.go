// Package function is the process function: it does one job. The connector
// invokes it for every message of the jobs queue and acknowledges the
// message only when it answers 2xx, so every answer here says whether the
// message is finished with (2xx) or must come again (anything else).
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	handler "github.com/openfaas/templates-sdk/go-http"

	"optio.dev/optio/api"
	"optio.dev/optio/config"
	"optio.dev/optio/index"
	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// Config is the process function's own configuration.
type Config struct {
	config.Config
	// WorkTime is how long the simulated work of a job takes
	// (OPTIO_WORK_MS, milliseconds). Default 5.
	WorkTime time.Duration
	// FailRate is the probability that the simulated work of a job fails
	// (OPTIO_FAIL_RATE, 0 to 1). Default 0.
	FailRate float64
	// ExecTimeout bounds one invocation (exec_timeout, as of-watchdog reads
	// it: "30s" or plain seconds). The golang-http template gives the
	// request no deadline of its own, so Handle sets this one: retries of
	// the document write stop in time to answer. Default 30s.
	ExecTimeout time.Duration
}

func readConfig(env config.Getenv) (Config, error) {
	shared, err := config.Read(env)
	if err != nil {
		return Config{}, err
	}
	c := Config{Config: shared}
	ms, err := config.Float(env, "OPTIO_WORK_MS", 5)
	if err != nil {
		return c, err
	}
	if ms < 0 || ms > 60_000 {
		return c, fmt.Errorf("OPTIO_WORK_MS=%v must be between 0 and 60000", ms)
	}
	c.WorkTime = time.Duration(ms * float64(time.Millisecond))
	if c.FailRate, err = config.Float(env, "OPTIO_FAIL_RATE", 0); err != nil {
		return c, err
	}
	if c.FailRate < 0 || c.FailRate > 1 {
		return c, fmt.Errorf("OPTIO_FAIL_RATE=%v must be between 0 and 1", c.FailRate)
	}
	if c.ExecTimeout, err = config.Timeout(env, "exec_timeout", 30*time.Second); err != nil {
		return c, err
	}
	if c.ExecTimeout <= 0 {
		return c, fmt.Errorf("exec_timeout=%v must be positive", c.ExecTimeout)
	}
	return c, nil
}

type deps struct {
	cfg   Config
	store *run.Store
	index *index.Index
	log   *slog.Logger

	mu       sync.Mutex
	hasIndex bool
}

var setup = sync.OnceValues(func() (*deps, error) {
	cfg, err := readConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	store, err := run.Open(cfg.Config)
	if err != nil {
		return nil, err
	}
	ix, err := index.New(index.Config{URL: cfg.ESURL, Username: cfg.ESUsername, Password: cfg.ESPassword, Index: cfg.Index})
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", "process")
	return &deps{cfg: cfg, store: store, index: ix, log: log}, nil
})

// outcome is what Handle answers for a job that is finished with.
type outcome struct {
	RunID   string `json:"runId"`
	JobID   int64  `json:"jobId"`
	Result  string `json:"result"`
	Counted bool   `json:"counted"`
}

// Handle does one job.
func Handle(req handler.Request) (handler.Response, error) {
	if resp, ok := api.Method(req, http.MethodPost); !ok {
		return resp, nil
	}
	d, err := setup()
	if err != nil {
		return api.Fail(http.StatusInternalServerError, "configuration: "+err.Error()), nil
	}
	job, err := queue.DecodeJob(req.Body)
	if err != nil {
		return api.Fail(http.StatusBadRequest, err.Error()), nil
	}
	// x-delivery-count, passed on by the connector: 0 on the first delivery.
	deliveries, _ := strconv.Atoi(req.Header.Get("X-Delivery-Count"))
	lastAttempt := deliveries >= d.cfg.DeliveryLimit
	ctx, cancel := invocationContext(api.Context(req), d.cfg.ExecTimeout)
	defer cancel()

	state, done, err := d.store.Begin(ctx, job.RunID, job.JobID, job.Retry)
	switch {
	case errors.Is(err, run.ErrUnknownRun):
		// Never a silent fresh start: the message goes back and, if Redis
		// really lost the run, on to the dead-letter queue.
		return api.Fail(http.StatusConflict, fmt.Sprintf("run %s is unknown to Redis (was its data lost?)", job.RunID)), nil
	case errors.Is(err, run.ErrNoSuchJob):
		// A forged or corrupt message: refused, never counted; the
		// connector retries it to the delivery limit, then it waits in the
		// dead-letter queue for someone to look at it.
		return api.Fail(http.StatusBadRequest, err.Error()), nil
	case err != nil:
		return api.Fail(http.StatusServiceUnavailable, err.Error()), nil
	case done:
		return api.JSON(http.StatusOK, outcome{job.RunID, job.JobID, "duplicate", false}), nil
	case state != run.Running && !(job.Retry && state == run.Completed):
		counted, err := d.store.Account(ctx, job.RunID, job.JobID, run.Cancelled)
		if err != nil {
			return api.Fail(http.StatusServiceUnavailable, err.Error()), nil
		}
		return api.JSON(http.StatusOK, outcome{job.RunID, job.JobID, "cancelled", counted}), nil
	}

	start := time.Now()
	if err := d.work(); err != nil {
		return d.fail(req, job, lastAttempt, http.StatusInternalServerError, err), nil
	}
	if err := d.ensureIndex(req); err != nil {
		return d.fail(req, job, lastAttempt, http.StatusServiceUnavailable, err), nil
	}
	err = d.put(ctx, index.Doc{
		RunID: job.RunID, JobID: job.JobID, ProcessedAt: time.Now().UTC(), ReleasedAt: job.ReleasedAt,
		Attempt: deliveries + 1, DurationMs: float64(time.Since(start).Microseconds()) / 1000,
	})
	if err != nil {
		return d.fail(req, job, lastAttempt, http.StatusServiceUnavailable, fmt.Errorf("write document: %w", err)), nil
	}
	counted, err := d.store.Account(ctx, job.RunID, job.JobID, run.Processed)
	if err != nil {
		// The document is written; the retry finds it and counts the job then.
		return api.Fail(http.StatusServiceUnavailable, err.Error()), nil
	}
	return api.JSON(http.StatusOK, outcome{job.RunID, job.JobID, "processed", counted}), nil
}

// put writes the job's document. While Elasticsearch is unavailable or
// overloaded (429, 503, timeouts: index.IsRetryable) it keeps trying with
// backoff until shortly before the invocation's deadline, so that an outage
// of a few seconds costs no delivery of the job's limited budget; only an
// outage that outlasts the invocation sends the job back to the queue.
func (d *deps) put(ctx context.Context, doc index.Doc) error {
	wait := 100 * time.Millisecond
	for {
		// Each attempt gets at most half of what is left, so that a hung
		// store still leaves time for another try and the answer.
		actx, cancel := attemptContext(ctx)
		_, err := d.index.Put(actx, doc)
		cancel()
		if err == nil || !index.IsRetryable(err) {
			return err
		}
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) < wait+3*time.Second || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// invocationContext gives the invocation a deadline: the watchdog's when it
// set one (the local runtime's does), else exec_timeout from now, as
// of-watchdog ends the invocation then but the golang-http template passes
// a request context with no deadline. Without one, put would retry a store
// outage with no bound and answer too late.
func invocationContext(ctx context.Context, execTimeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, execTimeout)
}

func attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, 10*time.Second)
	}
	return context.WithTimeout(ctx, max(time.Until(deadline)/2, 500*time.Millisecond))
}

// work simulates a job: it takes WorkTime and fails with FailRate.
func (d *deps) work() error {
	time.Sleep(d.cfg.WorkTime)
	if d.cfg.FailRate > 0 && rand.Float64() < d.cfg.FailRate {
		return errors.New("simulated job failure (OPTIO_FAIL_RATE)")
	}
	return nil
}

func (d *deps) ensureIndex(req handler.Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hasIndex {
		return nil
	}
	if err := d.index.EnsureIndex(api.Context(req)); err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	d.hasIndex = true
	return nil
}

// fail answers a failed attempt. On the last delivery RabbitMQ allows, the
// job is counted as failed before the answer sends it to the dead-letter
// queue, so that the run still completes and the failure shows.
func (d *deps) fail(req handler.Request, job queue.Job, lastAttempt bool, status int, cause error) handler.Response {
	if lastAttempt {
		counted, err := d.store.Account(api.Context(req), job.RunID, job.JobID, run.Failed)
		if err != nil {
			return api.Fail(http.StatusServiceUnavailable, err.Error())
		}
		if counted {
			d.log.Warn("job failed for good; it goes to the dead-letter queue", "run_id", job.RunID, "job_id", job.JobID, "err", cause)
		}
	}
	return api.Fail(status, fmt.Sprintf("job %d of run %s: %v", job.JobID, job.RunID, cause))
}
