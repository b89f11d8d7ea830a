package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const testAMQP = "amqp://guest:guest@127.0.0.1:5672/"

// A job nacked past the delivery limit lands in the dead-letter queue;
// ListDead shows it and leaves it there; RequeueDead moves the chosen jobs
// back, marked as retries, and leaves the others and anything that is not
// a job.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	var b [4]byte
	_, _ = rand.Read(b[:])
	top := Topology{Jobs: "test.dead." + hex.EncodeToString(b[:]), DeliveryLimit: 1}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := Dial(testAMQP, top)
	if err != nil {
		t.Fatalf("these tests need RabbitMQ at 127.0.0.1:5672: %v", err)
	}
	defer pub.Close()
	conn, err := amqp.Dial(testAMQP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ch.QueueDelete(top.Jobs, false, false, false)
		ch.QueueDelete(top.Dead(), false, false, false)
	})
	jobs := []Job{{RunID: "r-a", JobID: 1}, {RunID: "r-a", JobID: 2}, {RunID: "r-b", JobID: 3}}
	if n, err := pub.Batch(ctx, len(jobs), func(i int) (Job, bool) { return jobs[i], true }); err != nil || n != 3 {
		t.Fatalf("publish: %d %v", n, err)
	}
	if err := ch.PublishWithContext(ctx, "", top.Dead(), false, false, amqp.Publishing{Body: []byte("not a job")}); err != nil {
		t.Fatal(err)
	}
	// Nack every job until the broker dead-letters it (limit 1: the second
	// return is past it).
	for moved := 0; moved < 3; {
		d, ok, err := ch.Get(top.Jobs, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			dead, err := ListDead(ctx, testAMQP, top, 100)
			if err != nil {
				t.Fatal(err)
			}
			moved = len(dead) - 1
			time.Sleep(20 * time.Millisecond)
			continue
		}
		d.Nack(false, true)
	}
	dead, err := ListDead(ctx, testAMQP, top, 100)
	if err != nil || len(dead) != 4 {
		t.Fatalf("ListDead = %d letters, %v; want 3 jobs and 1 bad message", len(dead), err)
	}
	bad := 0
	for _, d := range dead {
		switch {
		case d.Bad:
			bad++
		case d.Reason != "delivery_limit":
			t.Errorf("job %d dead-lettered for %q, want delivery_limit", d.Job.JobID, d.Reason)
		}
	}
	if bad != 1 {
		t.Fatalf("%d bad messages listed, want 1", bad)
	}
	if again, _ := ListDead(ctx, testAMQP, top, 100); len(again) != 4 {
		t.Fatalf("listing took messages away: %d left", len(again))
	}

	n, err := RequeueDead(ctx, testAMQP, top, 100, func(j Job) bool { return j.RunID == "r-a" })
	if err != nil || n != 2 {
		t.Fatalf("RequeueDead = %d, %v; want 2", n, err)
	}
	for range 2 {
		d, ok, err := ch.Get(top.Jobs, true)
		if err != nil || !ok {
			t.Fatalf("requeued job not in %s: %v %v", top.Jobs, ok, err)
		}
		j, err := DecodeJob(d.Body)
		if err != nil || j.RunID != "r-a" || !j.Retry {
			t.Fatalf("requeued message %s: %+v %v, want a retry of run r-a", d.Body, j, err)
		}
	}
	left, _ := ListDead(ctx, testAMQP, top, 100)
	if len(left) != 2 {
		t.Fatalf("%d letters left, want job 3 and the bad message", len(left))
	}
}
