package main

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/connector-sdk/types"
	amqp "github.com/rabbitmq/amqp091-go"

	"optio.dev/optio/queue"
)

// Consumer consumes the jobs queue and hands each message to the functions
// subscribed to the queue's topic. A fixed pool of Config.Prefetch workers
// does the invoking, so no more than Prefetch invocations are ever in
// flight, across reconnections too.
type Consumer struct {
	cfg     Config
	log     *slog.Logger
	topics  *Topics
	client  *http.Client
	metrics *Metrics

	consuming atomic.Bool
	connMu    sync.Mutex
	conn      *amqp.Connection // the current connection, nil between sessions

	noSubscriber, gatewayDown, failing rateLimit
}

// NewConsumer returns a Consumer; Run starts it.
func NewConsumer(cfg Config, log *slog.Logger, topics *Topics, client *http.Client, m *Metrics) *Consumer {
	return &Consumer{cfg: cfg, log: log, topics: topics, client: client, metrics: m,
		noSubscriber: rateLimit{every: 30 * time.Second},
		gatewayDown:  rateLimit{every: 30 * time.Second},
		failing:      rateLimit{every: 10 * time.Second},
	}
}

// Consuming reports whether the consumer is subscribed to the queue now.
func (c *Consumer) Consuming() bool { return c.consuming.Load() }

// delivery is a message on its way to a worker.
type delivery struct {
	amqp.Delivery
	// lost is closed when the channel that delivered the message is gone:
	// RabbitMQ has requeued it, so the worker drops it.
	lost <-chan struct{}
	// done tells the session the message is acked or nacked.
	done func()
}

// Run consumes until ctx ends, reconnecting with a capped, jittered backoff
// whenever RabbitMQ goes away. When ctx ends it cancels the consumer,
// requeues the messages no worker has started, lets in-flight invocations
// finish and acks or nacks them; invocations still running when the grace
// period (see grace) is over are cancelled and requeued.
func (c *Consumer) Run(ctx context.Context) error {
	invokeCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	returned := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		select {
		case <-returned:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(grace(c.cfg.ShutdownTimeout))
		defer t.Stop()
		select {
		case <-returned:
		case <-t.C:
			c.log.Warn("shutdown timeout: cancelling in-flight invocations; their messages are requeued",
				"timeout", c.cfg.ShutdownTimeout)
			abort()
		}
	})
	defer bg.Wait()
	defer close(returned)

	work := make(chan delivery)
	for range c.cfg.Prefetch {
		bg.Go(func() {
			inv := NewInvoker(c.cfg.Shared.GatewayURL, c.client)
			for d := range work {
				c.handle(ctx, invokeCtx, inv, d)
				d.done()
			}
		})
	}
	defer close(work)

	b := backoff{base: c.cfg.Backoff, max: c.cfg.BackoffMax}
	for {
		established, err := c.session(ctx, work)
		if ctx.Err() != nil {
			if err != nil {
				c.log.Warn("consumer stopped", "err", err)
			}
			return nil
		}
		if established {
			b.reset()
			c.metrics.Reconnects.Inc()
		}
		wait := b.next()
		c.log.Warn("RabbitMQ unavailable; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session is one connection's life: connect, declare, consume, hand out
// messages, and, when ctx ends, drain. established says whether it got as
// far as consuming.
func (c *Consumer) session(ctx context.Context, work chan<- delivery) (established bool, err error) {
	conn, err := amqp.DialConfig(c.cfg.Shared.AMQPURL, amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Dial:       amqp.DefaultDial(10 * time.Second),
		Properties: amqp.Table{"connection_name": "optio-connector " + c.cfg.Shared.Queue},
	})
	if err != nil {
		return false, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open a RabbitMQ channel: %w", err)
	}
	top := queue.Topology{Jobs: c.cfg.Shared.Queue, DeliveryLimit: c.cfg.Shared.DeliveryLimit}
	if err := top.Declare(ch); err != nil {
		return false, err
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch %d: %w", c.cfg.Prefetch, err)
	}
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	tag := "optio-connector-" + randomHex(6)
	deliveries, err := ch.Consume(top.Jobs, tag, false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", top.Jobs, err)
	}

	c.connMu.Lock()
	c.conn = conn
	c.connMu.Unlock()
	c.consuming.Store(true)
	defer func() {
		c.consuming.Store(false)
		c.connMu.Lock()
		c.conn = nil
		c.connMu.Unlock()
	}()
	c.log.Info("consuming", "queue", top.Jobs, "prefetch", c.cfg.Prefetch)

	lost := make(chan struct{})
	defer close(lost)
	var inflight sync.WaitGroup
	closedErr := func(e *amqp.Error) error {
		if e == nil {
			return errors.New("RabbitMQ connection closed")
		}
		return fmt.Errorf("RabbitMQ closed the connection: %w", e)
	}
	for {
		select {
		case <-ctx.Done():
			return true, c.drain(ch, tag, deliveries, &inflight)
		case e := <-connClosed:
			return true, closedErr(e)
		case e := <-chClosed:
			return true, closedErr(e)
		case d, ok := <-deliveries:
			if !ok {
				return true, errors.New("RabbitMQ ended the consumer (channel closed or queue deleted)")
			}
			inflight.Add(1)
			select {
			case work <- delivery{Delivery: d, lost: lost, done: inflight.Done}:
			case <-ctx.Done():
				c.requeue(d)
				inflight.Done()
				return true, c.drain(ch, tag, deliveries, &inflight)
			case e := <-connClosed:
				inflight.Done()
				return true, closedErr(e)
			case e := <-chClosed:
				inflight.Done()
				return true, closedErr(e)
			}
		}
	}
}

// drain stops consuming (basic.cancel), requeues the messages RabbitMQ had
// already sent but no worker had started, and waits for the workers to ack
// or nack the messages they hold.
func (c *Consumer) drain(ch *amqp.Channel, tag string, deliveries <-chan amqp.Delivery, inflight *sync.WaitGroup) error {
	var err error
	if cerr := ch.Cancel(tag, false); cerr != nil {
		err = fmt.Errorf("cancel consumer %s: %w", tag, cerr)
	}
	c.consuming.Store(false)
	requeued := 0
	for d := range deliveries { // closed by Cancel or by the channel closing
		c.requeue(d)
		requeued++
	}
	c.log.Info("stopped consuming; finishing in-flight invocations",
		"requeued_unstarted", requeued, "timeout", c.cfg.ShutdownTimeout)
	inflight.Wait()
	return err
}

// handle takes one message to an ack or a nack, or drops it when its
// channel is gone (RabbitMQ has requeued it then).
//
// ctx ends at shutdown: waits end and the message is requeued. invokeCtx
// ends only when the shutdown timeout expires, cancelling invocations.
func (c *Consumer) handle(ctx, invokeCtx context.Context, inv *types.Invoker, d delivery) {
	c.metrics.InFlight.Inc()
	defer c.metrics.InFlight.Dec()
	topic := c.cfg.Topic()
	count := deliveryCount(d.Headers)
	h := http.Header{}
	h.Set("X-Delivery-Count", strconv.FormatInt(count, 10))
	h.Set("X-Message-Id", d.MessageId)
	h.Set("X-Connector", "optio-connector")
	ct := d.ContentType
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	down := backoff{base: c.cfg.Backoff, max: c.cfg.BackoffMax}

	// wait pauses for d, or until the topic map changes when changed is
	// not nil; false means stop: d was requeued or lost.
	wait := func(d0 time.Duration, changed <-chan struct{}) bool {
		var timer <-chan time.Time
		if d0 > 0 {
			t := time.NewTimer(d0)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-timer:
			return true
		case <-changed:
			return true
		case <-ctx.Done():
			c.requeue(d.Delivery)
			return false
		case <-d.lost:
			return false
		}
	}

	for {
		snap, changed := c.topics.Watch()
		fns := snap.Lookup[topic]
		if len(fns) == 0 {
			// Keep the message unacked until a function subscribes:
			// nacking it would spend the delivery limit for nothing.
			if c.noSubscriber.allow() {
				c.log.Warn("no function subscribes to the topic; holding messages until one does",
					"topic", topic, "last_refresh", snap.At)
			}
			if !wait(0, changed) {
				return
			}
			continue
		}

		ictx, cancel := context.WithTimeout(invokeCtx, c.cfg.InvokeTimeout)
		rs := invokeTopic(ictx, inv, c.topics.Map(), topic, d.Body, h)
		cancel()
		if len(rs) == 0 {
			continue // the map changed in between; look again
		}
		ok, gatewayDown := true, false
		var failure string
		for i, r := range rs {
			fn := r.Function
			if fn == "" && i < len(fns) {
				fn = fns[i]
			}
			c.metrics.Invocations.WithLabelValues(fn, outcome(r.Status, r.Error)).Observe(r.Duration.Seconds())
			switch {
			case r.Error != nil && unreachable(r.Error):
				gatewayDown = true
				ok = false
			case r.Error != nil:
				ok = false
				failure = r.Error.Error()
			case r.Status < 200 || r.Status > 299:
				ok = false
				failure = fmt.Sprintf("%s answered %d: %s", fn, r.Status, snippet(r.Body))
			}
		}
		switch {
		case ok:
			if err := d.Ack(false); err != nil {
				c.log.Debug("ack failed; RabbitMQ will redeliver", "message_id", d.MessageId, "err", err)
				return
			}
			c.metrics.Acked.Inc()
			return
		case gatewayDown && failure == "":
			// The request never reached the gateway: not the message's
			// fault, so retry it here without spending a delivery.
			wd := down.next()
			if c.gatewayDown.allow() {
				c.log.Warn("gateway unreachable; holding messages and retrying",
					"gateway", c.cfg.Shared.GatewayURL, "err", rs[0].Error, "retry_in", wd.Round(time.Millisecond))
			}
			if !wait(wd, nil) {
				return
			}
			continue
		default:
			if c.failing.allow() {
				c.log.Warn("invocation failed; requeueing (logged at most every 10s)",
					"message_id", d.MessageId, "delivery_count", count, "reason", failure)
			} else {
				c.log.Debug("invocation failed; requeueing",
					"message_id", d.MessageId, "delivery_count", count, "reason", failure)
			}
			if !wait(retryDelay(c.cfg.RetryDelay, count), nil) {
				return
			}
			c.requeue(d.Delivery)
			return
		}
	}
}

// requeue hands a message back to the queue (nack with requeue); the
// quorum queue counts the delivery and dead-letters the message past the
// delivery limit.
func (c *Consumer) requeue(d amqp.Delivery) {
	if err := d.Nack(false, true); err != nil {
		c.log.Debug("nack failed; RabbitMQ will redeliver", "message_id", d.MessageId, "err", err)
		return
	}
	c.metrics.Requeued.Inc()
}

// grace is how long in-flight work may run after shutdown begins: the
// shutdown timeout less a tenth (at most 2s), kept for requeueing and
// closing, so that the process is gone within the timeout.
func grace(timeout time.Duration) time.Duration {
	return timeout - min(timeout/10, 2*time.Second)
}

// retryDelay is base doubled for each earlier delivery, capped at 30*base.
func retryDelay(base time.Duration, count int64) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base << min(count, 5)
	return min(d, 30*base)
}

// deliveryCount reads the quorum queue's x-delivery-count header: absent on
// the first delivery, 1 on the second, and so on.
func deliveryCount(h amqp.Table) int64 {
	switch v := h["x-delivery-count"].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int16:
		return int64(v)
	case int8:
		return int64(v)
	case int:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	}
	return 0
}

// snippet is the start of a function's answer, for logs.
func snippet(b *[]byte) string {
	if b == nil {
		return ""
	}
	s := strings.TrimSpace(string(*b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// backoff grows from base, doubling up to max, with jitter: each wait is
// between half and all of the current step.
type backoff struct {
	base, max time.Duration
	n         int
}

func (b *backoff) next() time.Duration {
	d := b.base
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.n++
	half := d / 2
	return half + rand.N(d-half+1)
}

func (b *backoff) reset() { b.n = 0 }

// rateLimit lets a repeated log line through at most once per every.
type rateLimit struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
}

func (r *rateLimit) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); r.last.IsZero() || now.Sub(r.last) >= r.every {
		r.last = now
		return true
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}
