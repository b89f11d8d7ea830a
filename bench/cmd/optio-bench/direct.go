package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	handler "github.com/openfaas/templates-sdk/go-http"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	function "optio.dev/functions/process"
	"optio.dev/local/supervisor"
	"optio.dev/optio/queue"
	"optio.dev/optio/run"
)

// direct runs the process function's own Handle in this process, with no
// HTTP hop: the per-job work of the floor and of the Asynq peer. Its keys,
// queue and index are its own.
type direct struct {
	cfg    Config
	rdb    *redis.Client
	store  *run.Store
	queue  string
	asynqQ string
}

// newDirect sets the environment Handle reads on its first call (once per
// process), so it must run before any Handle.
func newDirect(cfg Config) (*direct, error) {
	tag := cfg.ID + "-direct"
	prefix := "bench:" + tag + ":"
	for k, v := range map[string]string{
		"REDIS_URL":         cfg.RedisURL,
		"ES_URL":            supervisor.ESStoreURL,
		"OPTIO_PREFIX":      prefix,
		"OPTIO_QUEUE":       "bench." + tag + ".jobs",
		"OPTIO_INDEX":       "bench_" + cfg.ID + "_direct",
		"OPTIO_SECRETS_DIR": os.TempDir() + "/optio-bench-no-secrets",
	} {
		os.Setenv(k, v)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	return &direct{cfg: cfg, rdb: rdb, store: run.NewStore(rdb, prefix, time.Hour),
		queue: "bench." + tag + ".jobs", asynqQ: "bench-" + tag}, nil
}

// handle runs one job through the process function and tells whether it
// is finished with.
func handle(ctx context.Context, body []byte, deliveries int64) error {
	h := http.Header{}
	h.Set("X-Delivery-Count", strconv.FormatInt(deliveries, 10))
	h.Set("Content-Type", "application/json")
	req := handler.Request{Body: body, Header: h, Method: http.MethodPost}
	req.WithContext(ctx)
	res, err := function.Handle(req)
	if err != nil {
		return err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("process answered %d: %s", res.StatusCode, res.Body)
	}
	return nil
}

// floor consumes x jobs from a RabbitMQ quorum queue with prefetch workers,
// each calling Handle directly, and returns jobs per second from the run's
// creation to its completion.
func (d *direct) floor(ctx context.Context, x int64, prefetch int) (float64, error) {
	top := queue.Topology{Jobs: d.queue, DeliveryLimit: 5}
	conn, err := amqp.Dial(d.cfg.AMQPURL)
	if err != nil {
		return 0, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	if err := top.Declare(ch); err != nil {
		return 0, err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return 0, err
	}
	deliveries, err := ch.Consume(d.queue, "", false, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	pub, err := queue.Dial(d.cfg.AMQPURL, top)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	var wg sync.WaitGroup
	for range prefetch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range deliveries {
				count, _ := m.Headers["x-delivery-count"].(int64)
				if err := handle(ctx, m.Body, count); err != nil {
					_ = m.Nack(false, true)
					continue
				}
				_ = m.Ack(false)
			}
		}()
	}
	defer wg.Wait()
	defer ch.Close()

	t0 := time.Now()
	r, err := d.store.Create(ctx, x, run.MaxY)
	if err != nil {
		return 0, err
	}
	go func() {
		const batch = 500
		for i := int64(0); i < x; i += batch {
			n := min(batch, x-i)
			if _, err := pub.Batch(ctx, int(n), func(k int) (queue.Job, bool) {
				return queue.Job{RunID: r.ID, JobID: i + int64(k), ReleasedAt: time.Now()}, true
			}); err != nil {
				return
			}
		}
	}()
	return d.finish(ctx, r.ID, t0)
}

func (d *direct) finish(ctx context.Context, id string, t0 time.Time) (float64, error) {
	done, err := waitRun(ctx, d.store, id, 5*time.Minute, 20*time.Millisecond, func(r run.Run) bool {
		return r.State != run.Running
	})
	if err != nil {
		return 0, err
	}
	if done.State != run.Completed || done.FinishedAt == nil {
		return 0, fmt.Errorf("run %s ended %s", id, done.State)
	}
	return float64(done.XTotal) / done.FinishedAt.Sub(t0).Seconds(), nil
}

// asynq enqueues x Asynq tasks and has an Asynq server of concurrency
// workers run Handle on each; jobs per second from the run's creation to its
// completion.
func (d *direct) asynq(ctx context.Context, x int64, concurrency int) (float64, error) {
	client := asynq.NewClientFromRedisClient(d.rdb)
	srv := asynq.NewServerFromRedisClient(d.rdb, asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{d.asynqQ: 1},
		LogLevel:    asynq.WarnLevel,
	})
	t0 := time.Now()
	r, err := d.store.Create(ctx, x, run.MaxY)
	if err != nil {
		return 0, err
	}
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		retried, _ := asynq.GetRetryCount(ctx)
		return handle(ctx, t.Payload(), int64(retried))
	})); err != nil {
		return 0, fmt.Errorf("start asynq server: %w", err)
	}
	defer srv.Shutdown()
	var wg sync.WaitGroup
	const enqueuers = 8
	for w := range enqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := int64(w); j < x; j += enqueuers {
				body := queue.Job{RunID: r.ID, JobID: j, ReleasedAt: time.Now()}.Encode()
				if _, err := client.EnqueueContext(ctx, asynq.NewTask("job", body), asynq.Queue(d.asynqQ), asynq.MaxRetry(4)); err != nil {
					return
				}
			}
		}()
	}
	jps, err := d.finish(ctx, r.ID, t0)
	wg.Wait()
	return jps, err
}

// close removes the keys and queues of the direct measurements.
func (d *direct) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	insp := asynq.NewInspectorFromRedisClient(d.rdb)
	_ = insp.DeleteQueue(d.asynqQ, true)
	for _, pattern := range []string{"bench:" + d.cfg.ID + "-direct:*", "asynq:{" + d.asynqQ + "}*"} {
		iter := d.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			d.rdb.Unlink(ctx, iter.Val())
		}
	}
	if conn, err := amqp.Dial(d.cfg.AMQPURL); err == nil {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(d.queue, false, false, false)
			_, _ = ch.QueueDelete(d.queue+".dead", false, false, false)
		}
		conn.Close()
	}
	d.rdb.Close()
}
