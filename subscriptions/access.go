package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/smart"
	"github.com/nats-io/nats.go/jetstream"
)

// OwnersBucket is the KeyValue bucket of the scopes subscriptions deliver
// under: key the subscription id, value the creator record of the latest
// version written through the API (with history, see creator).
const OwnersBucket = "FHIR_SUBSCRIPTION_OWNERS"

// ownerHistory is how many records a key keeps.
const ownerHistory = 16

// owner is what the hub keeps of the token that wrote a Subscription.
type owner struct {
	Version   int64  `json:"version"`
	Scope     string `json:"scope"`
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
	FHIRUser  string `json:"fhirUser,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
}

// RecordCreator is a fhir.Service.Authorize step (cmd/fhirserver chains it
// after the REST layer's): a Subscription created or updated by a client
// with a verified token has that token's scopes and launch context recorded
// for the version being written, before the write commits, so the hub
// delivers only what that client may read. Writes without an Access (the
// hub's own status updates, authorization off) record nothing.
func (h *Hub) RecordCreator(ctx context.Context, w fhir.Write, _ *fhir.Resource) error {
	if w.Type != "Subscription" || w.Op == fhir.OpDelete {
		return nil
	}
	a := smart.AccessFrom(ctx)
	if a == nil {
		return nil
	}
	kv := h.owners()
	if kv == nil {
		return fhir.Unavailable(nil, "subscriptions: the subscription hub is not connected to NATS yet; try again")
	}
	b, _ := json.Marshal(owner{Version: w.Version, Scope: a.Grant.String(), Patient: a.Patient, Encounter: a.Encounter,
		FHIRUser: a.FHIRUser, ClientID: a.ClientID, Subject: a.Subject})
	if _, err := kv.Put(ctx, w.ID, b); err != nil {
		return fhir.Unavailable(err, "subscriptions: could not record the scopes of Subscription/%s; try again", w.ID)
	}
	return nil
}

// creator returns the Access recorded for the Subscription version (the
// newest record for a version at or before it: the hub's own status
// updates add versions without records); ok false when there is none.
func (h *Hub) creator(ctx context.Context, id string, version int64) (a *smart.Access, ok bool, err error) {
	kv := h.owners()
	if kv == nil {
		return nil, false, errors.New("subscriptions: the owners bucket is not open")
	}
	hist, err := kv.History(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("subscriptions: read the scopes of Subscription/%s: %w", id, err)
	}
	var best *owner
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		var o owner
		if json.Unmarshal(e.Value(), &o) != nil || o.Version > version {
			continue
		}
		if best == nil || o.Version >= best.Version {
			best = &o
		}
	}
	if best == nil {
		return nil, false, nil
	}
	g, _ := smart.ParseGrant(best.Scope)
	return &smart.Access{Grant: g, Patient: best.Patient, Encounter: best.Encounter, FHIRUser: best.FHIRUser,
		ClientID: best.ClientID, Subject: best.Subject}, true, nil
}
