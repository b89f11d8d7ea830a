package queue

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DeadLetter is a job waiting in the dead-letter queue.
type DeadLetter struct {
	Job Job `json:"job"`
	// Reason is why RabbitMQ dead-lettered it (x-first-death-reason, e.g.
	// "delivery_limit").
	Reason string `json:"reason,omitempty"`
	// Body is the message as it was, when it is not a job of ours.
	Body string `json:"body,omitempty"`
	// Bad says the message is not a valid job; Requeue leaves it alone.
	Bad bool `json:"bad,omitempty"`
}

// ListDead returns up to limit messages of the dead-letter queue without
// removing them: it takes them unacknowledged and closes the channel, which
// hands them all back.
func ListDead(ctx context.Context, url string, top Topology, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := withDead(url, top, func(ch *amqp.Channel) error {
		for len(out) < limit {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok, err := ch.Get(top.Dead(), false)
			if err != nil {
				return fmt.Errorf("read dead-letter queue %s: %w", top.Dead(), err)
			}
			if !ok {
				return nil
			}
			out = append(out, deadLetter(d))
		}
		return nil
	})
	return out, err
}

// RequeueDead moves up to limit dead-lettered jobs for which keep returns
// true back onto the jobs queue, marked as a retry (Job.Retry), so that
// process tries them again with a fresh delivery limit; a job counted as
// failed is then counted again as processed (or failed). Each job is
// published with a publisher confirm before its dead letter is removed, so a
// crash in between leaves a duplicate, never a loss. Messages that are not
// valid jobs stay in the dead-letter queue. It returns how many it moved.
func RequeueDead(ctx context.Context, url string, top Topology, limit int, keep func(Job) bool) (int, error) {
	moved := 0
	err := withDead(url, top, func(ch *amqp.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("enable publisher confirms: %w", err)
		}
		for moved < limit {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok, err := ch.Get(top.Dead(), false)
			if err != nil {
				return fmt.Errorf("read dead-letter queue %s: %w", top.Dead(), err)
			}
			if !ok {
				return nil
			}
			dl := deadLetter(d)
			if dl.Bad || !keep(dl.Job) {
				continue // handed back when the channel closes
			}
			job := dl.Job
			job.Retry = true
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", top.Jobs, false, false, amqp.Publishing{
				ContentType:  "application/json",
				DeliveryMode: amqp.Persistent,
				Timestamp:    time.Now(),
				MessageId:    fmt.Sprintf("%s/%d", job.RunID, job.JobID),
				Body:         job.Encode(),
			})
			if err != nil {
				return fmt.Errorf("requeue job %d of run %s: %w", job.JobID, job.RunID, err)
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("requeue job %d of run %s: broker did not confirm (%v)", job.JobID, job.RunID, err)
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("remove requeued job %d of run %s from %s: %w", job.JobID, job.RunID, top.Dead(), err)
			}
			moved++
		}
		return nil
	})
	return moved, err
}

func deadLetter(d amqp.Delivery) DeadLetter {
	dl := DeadLetter{}
	if r, ok := d.Headers["x-first-death-reason"].(string); ok {
		dl.Reason = r
	}
	job, err := DecodeJob(d.Body)
	if err != nil {
		dl.Bad = true
		b := d.Body
		if len(b) > 200 {
			b = b[:200]
		}
		dl.Body = string(b)
		return dl
	}
	dl.Job = job
	return dl
}

// withDead runs f on a channel of a connection that is closed afterwards,
// which hands back every message f took and did not acknowledge.
func withDead(url string, top Topology, f func(ch *amqp.Channel) error) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("connect to RabbitMQ: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open RabbitMQ channel: %w", err)
	}
	if err := top.Declare(ch); err != nil {
		return err
	}
	return f(ch)
}
