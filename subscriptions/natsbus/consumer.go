package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer is a durable pull consumer on FHIR_CHANGES: it remembers in NATS
// what it has acknowledged, so a reader that restarts goes on where it left.
type Consumer struct {
	c jetstream.Consumer
}

// ConsumerConfig names a consumer and what it reads.
type ConsumerConfig struct {
	// Durable is the consumer's name (required).
	Durable string
	// Types limits it to changes of these resource types (none: all).
	Types []string
	// AckWait is how long a fetched change may stay unacknowledged before
	// it is delivered again (default 30 s).
	AckWait time.Duration
	// StartAfter, when > 0 and the consumer is new, starts it after this
	// stream sequence instead of at the oldest change kept.
	StartAfter uint64
}

// Consumer creates (or updates) a durable pull consumer on the stream.
func (b *Bus) Consumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Durable == "" {
		return nil, errors.New("natsbus: a consumer needs a durable name")
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       cfg.AckWait,
	}
	if cc.AckWait <= 0 {
		cc.AckWait = 30 * time.Second
	}
	if cfg.StartAfter > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartAfter+1
	}
	for _, t := range cfg.Types {
		cc.FilterSubjects = append(cc.FilterSubjects, Subject(t))
	}
	c, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, cc)
	if err != nil {
		return nil, fmt.Errorf("natsbus: create the consumer %s: %w", cfg.Durable, err)
	}
	return &Consumer{c: c}, nil
}

// Delivery is one change fetched from a consumer; acknowledge it once handled.
type Delivery struct {
	fhir.Change
	// StreamSeq is the message's sequence in FHIR_CHANGES.
	StreamSeq uint64
	msg       jetstream.Msg
}

// Ack acknowledges the change and waits for the server to confirm it, so it
// is not delivered again.
func (d *Delivery) Ack(ctx context.Context) error { return d.msg.DoubleAck(ctx) }

// Nak asks for the change to be delivered again, at once.
func (d *Delivery) Nak() error { return d.msg.Nak() }

// Fetch returns up to max changes, waiting at most wait for the first. A
// message that is not a change (it cannot be decoded) is terminated, never
// delivered again, and left out.
func (c *Consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*Delivery, error) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = time.Until(dl)
	}
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	batch, err := c.c.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, fmt.Errorf("natsbus: fetch: %w", err)
	}
	var out []*Delivery
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		if err != nil {
			_ = msg.Term()
			continue
		}
		ch, err := DecodeChange(msg.Headers(), msg.Data())
		if err != nil {
			_ = msg.TermWithReason(err.Error())
			continue
		}
		out = append(out, &Delivery{Change: ch, StreamSeq: meta.Sequence.Stream, msg: msg})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && len(out) == 0 {
		return nil, fmt.Errorf("natsbus: fetch: %w", err)
	}
	return out, nil
}
