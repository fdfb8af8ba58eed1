package natsbus

import (
	"fmt"
	"strconv"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a change message.
const (
	HeaderSeq         = "Fhir-Seq"
	HeaderType        = "Fhir-Type"
	HeaderID          = "Fhir-Id"
	HeaderVersion     = "Fhir-Version"
	HeaderOp          = "Fhir-Op"
	HeaderLastUpdated = "Fhir-Last-Updated"
)

// EncodeChange makes the message of a change: its subject, headers and body.
// Nats-Msg-Id is the Seq.
func EncodeChange(ch fhir.Change) *nats.Msg {
	seq := strconv.FormatInt(ch.Seq, 10)
	h := nats.Header{}
	h.Set(HeaderSeq, seq)
	h.Set(HeaderType, ch.Type)
	h.Set(HeaderID, ch.ID)
	h.Set(HeaderVersion, strconv.FormatInt(ch.Version, 10))
	h.Set(HeaderOp, string(ch.Op))
	h.Set(HeaderLastUpdated, fhir.FormatInstant(ch.LastUpdated))
	h.Set(jetstream.MsgIDHeader, seq)
	var body []byte
	if ch.Op != fhir.OpDelete {
		body = ch.JSON
	}
	return &nats.Msg{Subject: Subject(ch.Type), Header: h, Data: body}
}

// DecodeChange reads a change back from a message's headers and body.
func DecodeChange(h nats.Header, body []byte) (fhir.Change, error) {
	var ch fhir.Change
	var err error
	if ch.Seq, err = strconv.ParseInt(h.Get(HeaderSeq), 10, 64); err != nil || ch.Seq < 1 {
		return ch, fmt.Errorf("natsbus: decode a change: %s %q is not a position", HeaderSeq, h.Get(HeaderSeq))
	}
	ch.Type, ch.ID = h.Get(HeaderType), h.Get(HeaderID)
	if ch.Type == "" || ch.ID == "" {
		return ch, fmt.Errorf("natsbus: decode change %d: no %s or %s", ch.Seq, HeaderType, HeaderID)
	}
	if ch.Version, err = strconv.ParseInt(h.Get(HeaderVersion), 10, 64); err != nil || ch.Version < 1 {
		return ch, fmt.Errorf("natsbus: decode change %d: %s %q is not a version", ch.Seq, HeaderVersion, h.Get(HeaderVersion))
	}
	switch op := fhir.Op(h.Get(HeaderOp)); op {
	case fhir.OpCreate, fhir.OpUpdate, fhir.OpDelete:
		ch.Op = op
	default:
		return ch, fmt.Errorf("natsbus: decode change %d: unknown %s %q", ch.Seq, HeaderOp, op)
	}
	if ch.LastUpdated, err = time.Parse(time.RFC3339Nano, h.Get(HeaderLastUpdated)); err != nil {
		return ch, fmt.Errorf("natsbus: decode change %d: %s: %w", ch.Seq, HeaderLastUpdated, err)
	}
	if ch.Op != fhir.OpDelete {
		ch.JSON = body
	}
	return ch, nil
}
