package queue

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Topology names the queues of one Optio installation. Tests give each test
// its own names so that tests never see each other's messages.
type Topology struct {
	// Jobs is the durable quorum queue the connector consumes. Default "optio.jobs".
	Jobs string
	// DeliveryLimit is how many times a job is delivered before RabbitMQ
	// dead-letters it. Default 5.
	DeliveryLimit int
}

// Dead is the dead-letter queue of Jobs: jobs that kept failing wait there.
func (t Topology) Dead() string { return t.Jobs + ".dead" }

// Declare creates the jobs queue and its dead-letter queue, or checks that
// they exist with the same arguments. Every process that touches the queues
// declares them with these exact arguments, so the first one wins and a
// mismatch is an error rather than a silently different queue.
func (t Topology) Declare(ch *amqp.Channel) error {
	if _, err := ch.QueueDeclare(t.Dead(), true, false, false, false, amqp.Table{
		"x-queue-type": "quorum",
	}); err != nil {
		return fmt.Errorf("declare dead-letter queue %s: %w", t.Dead(), err)
	}
	// at-least-once dead-lettering (RabbitMQ 3.10+) moves a message to the
	// dead-letter queue only once that queue has confirmed it, so a broker
	// crash mid-way cannot lose it; it requires reject-publish overflow.
	if _, err := ch.QueueDeclare(t.Jobs, true, false, false, false, amqp.Table{
		"x-queue-type":              "quorum",
		"x-delivery-limit":          int32(t.DeliveryLimit),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": t.Dead(),
		"x-dead-letter-strategy":    "at-least-once",
		"x-overflow":                "reject-publish",
	}); err != nil {
		return fmt.Errorf("declare jobs queue %s: %w", t.Jobs, err)
	}
	return nil
}
