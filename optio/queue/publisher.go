package queue

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher publishes persistent job messages to the jobs queue with
// publisher confirms: a publish returns only once the broker has taken
// responsibility for the message.
type Publisher struct {
	conn *amqp.Connection
	ch   *amqp.Channel
	top  Topology
}

// Dial connects to RabbitMQ, declares the topology and puts the channel in
// confirm mode.
func Dial(url string, top Topology) (*Publisher, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open RabbitMQ channel: %w", err)
	}
	if err := top.Declare(ch); err != nil {
		conn.Close()
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	return &Publisher{conn: conn, ch: ch, top: top}, nil
}

// Closed reports whether the connection is gone, so a caller can redial.
func (p *Publisher) Closed() bool { return p.conn.IsClosed() || p.ch.IsClosed() }

// Close closes the channel and connection.
func (p *Publisher) Close() error { return p.conn.Close() }

// Batch publishes jobs one by one, each stamped by the caller, and waits for
// all their confirms. stamp is called right before each publish and returns
// the job to send; it may block to pace releases. Publishing stops at the
// first job for which stamp returns ok=false. It returns how many were
// published and confirmed; on error, some of those may not be confirmed and
// must be published again (processing is idempotent).
func (p *Publisher) Batch(ctx context.Context, n int, stamp func(i int) (Job, bool)) (int, error) {
	confirms := make([]*amqp.DeferredConfirmation, 0, n)
	for i := 0; i < n; i++ {
		job, ok := stamp(i)
		if !ok {
			break
		}
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", p.top.Jobs, false, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			Timestamp:    job.ReleasedAt,
			MessageId:    fmt.Sprintf("%s/%d", job.RunID, job.JobID),
			Body:         job.Encode(),
		})
		if err != nil {
			return 0, fmt.Errorf("publish job %d of run %s: %w", job.JobID, job.RunID, err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return 0, fmt.Errorf("wait for publisher confirm: %w", err)
		}
		if !ok {
			return 0, fmt.Errorf("broker refused job message %d (nack)", dc.DeliveryTag)
		}
	}
	return len(confirms), nil
}
