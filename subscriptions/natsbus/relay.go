package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/nats-io/nats.go/jetstream"
)

// ChangeFeed is what the relay reads: the change feed of a fhir.Store.
type ChangeFeed interface {
	// Changes lists committed changes with Seq > after, oldest first, at most limit.
	Changes(ctx context.Context, after int64, limit int) ([]fhir.Change, error)
}

// Relay publishes every change of a feed to FHIR_CHANGES, exactly once and in
// order, resuming from the stream's head (see the package documentation).
// Several relays (one per replica) may run against one store and one stream.
type Relay struct {
	Feed ChangeFeed
	Bus  *Bus
	// BatchSize is how many changes are read and published at a time (default 512).
	BatchSize int
	// PollInterval is how often the feed is read without a Notify (default 1 s).
	PollInterval time.Duration
	Logger       *slog.Logger

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	kvMu   sync.Mutex // guards kv, looked up once
	kv     jetstream.KeyValue

	published     atomic.Uint64
	lastPublished atomic.Int64
	lastCommitted atomic.Int64
}

// NewRelay returns a relay from feed to bus's stream.
func NewRelay(feed ChangeFeed, bus *Bus) *Relay {
	return &Relay{Feed: feed, Bus: bus, BatchSize: 512, PollInterval: time.Second, wake: make(chan struct{}, 1)}
}

// RelayStats tells how far the relay is.
type RelayStats struct {
	// Published counts the messages this relay stored in the stream.
	Published uint64
	// LastPublished is the Seq of the last change in the stream, as this
	// relay last saw it.
	LastPublished int64
	// LastCommitted is the highest Seq this relay knows to be committed.
	LastCommitted int64
}

// Lag is how many feed positions are committed but not yet published.
func (s RelayStats) Lag() int64 { return max(0, s.LastCommitted-s.LastPublished) }

// Stats reports the relay's progress; safe to call at any time.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Published: r.published.Load(), LastPublished: r.lastPublished.Load(), LastCommitted: r.lastCommitted.Load()}
}

// Notify tells the relay that the change at seq committed. It never blocks;
// pass it to fhir.Service.Committed.
func (r *Relay) Notify(seq int64) {
	r.noteCommitted(seq)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Relay) noteCommitted(seq int64) {
	for {
		cur := r.lastCommitted.Load()
		if seq <= cur || r.lastCommitted.CompareAndSwap(cur, seq) {
			return
		}
	}
}

func (r *Relay) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Open starts the relay's goroutine. It returns at once: a NATS that cannot
// be reached is retried in the background.
func (r *Relay) Open(ctx context.Context) error {
	if r.Feed == nil || r.Bus == nil || r.Bus.js == nil {
		return errors.New("natsbus: the relay needs a feed and an open bus")
	}
	if r.BatchSize <= 0 {
		r.BatchSize = 512
	}
	if r.PollInterval <= 0 {
		r.PollInterval = time.Second
	}
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(runCtx)
	return nil
}

// Close stops the relay and waits for its goroutine. Changes it has not
// published are published by the next relay to run, from the stream's head.
func (r *Relay) Close(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsbus: stop the relay: %w", ctx.Err())
	}
}

func (r *Relay) run(ctx context.Context) {
	defer close(r.done)
	poll := time.NewTicker(r.PollInterval)
	defer poll.Stop()
	var (
		synced    bool
		after     int64  // Seq of the last change in the stream
		head      uint64 // the stream's last sequence
		failures  int
		conflicts int
		unsaved   bool // published since the position was saved
		savedAt   time.Time
	)
	fail := func(what string, err error) {
		if ctx.Err() != nil {
			return
		}
		failures++
		level := slog.LevelWarn
		if failures > 1 {
			level = slog.LevelDebug // said once per outage
		}
		r.logger().Log(ctx, level, "natsbus: relay: "+what+"; retrying", "err", err, "attempt", failures)
		_ = wait(ctx, backoffDelay(failures-1))
	}
	for ctx.Err() == nil {
		if !synced {
			a, h, err := r.head(ctx)
			if err != nil {
				fail("read the stream head", err)
				continue
			}
			after, head, synced = a, h, true
			r.lastPublished.Store(after)
			r.noteCommitted(after)
		}
		changes, err := r.Feed.Changes(ctx, after, r.BatchSize)
		if err != nil {
			fail("read the change feed", err)
			continue
		}
		if len(changes) == 0 {
			if failures > 0 {
				r.logger().Info("natsbus: relay caught up", "seq", after)
			}
			failures = 0
			if unsaved {
				if err := r.savePosition(ctx, after, head); err != nil {
					r.logger().Debug("natsbus: relay: save the position", "err", err)
				}
				unsaved, savedAt = false, time.Now()
			}
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-poll.C:
			}
			continue
		}
		r.noteCommitted(changes[len(changes)-1].Seq)
		n, a, h, err := r.publish(ctx, changes, after, head)
		after, head = a, h
		if n > 0 {
			unsaved = true
		}
		if err != nil {
			synced = false
			if isWrongLastSequence(err) {
				// Another relay published first: re-read the head. A short,
				// growing, random wait lets one of several relays win.
				conflicts++
				_ = wait(ctx, time.Duration(rand.Int64N(int64(min(conflicts, 50))*int64(time.Millisecond))+1))
				continue
			}
			fail("publish", err)
			continue
		}
		conflicts = 0
		if time.Since(savedAt) > 10*time.Second {
			if err := r.savePosition(ctx, after, head); err == nil {
				unsaved, savedAt = false, time.Now()
			}
		}
	}
}

// publish sends a batch, each message expecting the stream's last sequence
// to be the one before it, and waits for every acknowledgement. It returns
// how many were stored in order and the position after them; on any failure
// the rest of the batch is dropped and the caller re-reads the head.
func (r *Relay) publish(ctx context.Context, changes []fhir.Change, after int64, head uint64) (int, int64, uint64, error) {
	js := r.Bus.js
	futures := make([]jetstream.PubAckFuture, 0, len(changes))
	var err error
	for i, ch := range changes {
		f, perr := js.PublishMsgAsync(EncodeChange(ch),
			jetstream.WithExpectLastSequence(head+uint64(i)),
			jetstream.WithExpectStream(StreamName))
		if perr != nil {
			err = perr
			break
		}
		futures = append(futures, f)
	}
	n := 0
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				if err == nil {
					err = fmt.Errorf("natsbus: change %d was already in the stream", changes[i].Seq)
				}
				continue
			}
			r.published.Add(1)
			if err == nil && ack.Sequence == head+1 {
				head, after = ack.Sequence, changes[i].Seq
				n++
				r.lastPublished.Store(after)
			} else if err == nil {
				err = fmt.Errorf("natsbus: change %d stored at stream sequence %d, expected %d", changes[i].Seq, ack.Sequence, head+1)
			}
		case ferr := <-f.Err():
			if err == nil {
				err = ferr
			}
		case <-ctx.Done():
			return n, after, head, ctx.Err()
		}
	}
	return n, after, head, err
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// head reads the stream's last message: the Seq of the last change published
// and the stream sequence after which the next must go. It creates the stream
// when it is missing.
func (r *Relay) head(ctx context.Context) (int64, uint64, error) {
	js := r.Bus.js
	st, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := r.Bus.EnsureStream(ctx); err != nil {
			return 0, 0, fmt.Errorf("natsbus: create the stream: %w", err)
		}
		st, err = js.Stream(ctx, StreamName)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("natsbus: look up the stream: %w", err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, SubjectPrefix+">")
	if err == nil {
		seq, perr := strconv.ParseInt(msg.Header.Get(HeaderSeq), 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("natsbus: the last message of %s (stream sequence %d, subject %s) has no %s: only the relay may publish to %s>", StreamName, msg.Sequence, msg.Subject, HeaderSeq, SubjectPrefix)
		}
		return seq, msg.Sequence, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, fmt.Errorf("natsbus: read the last message: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("natsbus: read the stream's state: %w", err)
	}
	last := info.State.LastSeq
	if last == 0 {
		return 0, 0, nil // a new stream: publish the whole feed
	}
	// Every message expired (or was purged): resume from the saved position.
	pos, err := r.loadPosition(ctx)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		r.logger().Warn("natsbus: relay: the stream is empty and no position was saved; publishing the whole change feed again", "stream_seq", last)
		return 0, last, nil
	case err != nil:
		return 0, 0, fmt.Errorf("natsbus: read the saved position: %w", err)
	case pos.StreamSeq != last:
		r.logger().Warn("natsbus: relay: the stream is empty and the saved position is older than its head; changes after it may be published twice", "seq", pos.Seq, "saved_stream_seq", pos.StreamSeq, "stream_seq", last)
	}
	return pos.Seq, last, nil
}

// position is the relay's hint in the FHIR_RELAY bucket.
type position struct {
	Seq       int64  `json:"seq"`
	StreamSeq uint64 `json:"stream_seq"`
}

const positionKey = "position"

func (r *Relay) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	r.kvMu.Lock()
	defer r.kvMu.Unlock()
	if r.kv != nil {
		return r.kv, nil
	}
	kv, err := r.Bus.js.KeyValue(ctx, PositionBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if err := r.Bus.EnsureStream(ctx); err != nil {
			return nil, err
		}
		kv, err = r.Bus.js.KeyValue(ctx, PositionBucket)
	}
	if err != nil {
		return nil, err
	}
	r.kv = kv
	return kv, nil
}

func (r *Relay) savePosition(ctx context.Context, seq int64, streamSeq uint64) error {
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(position{Seq: seq, StreamSeq: streamSeq})
	_, err = kv.Put(ctx, positionKey, b)
	return err
}

func (r *Relay) loadPosition(ctx context.Context) (position, error) {
	var pos position
	kv, err := r.bucket(ctx)
	if err != nil {
		return pos, err
	}
	e, err := kv.Get(ctx, positionKey)
	if err != nil {
		return pos, err
	}
	if err := json.Unmarshal(e.Value(), &pos); err != nil {
		return pos, fmt.Errorf("natsbus: the saved position %q: %w", e.Value(), err)
	}
	return pos, nil
}
