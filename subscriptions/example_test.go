package subscriptions_test

import (
	"crypto/hmac"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/fhirhub/fhirhub/subscriptions"
)

// A receiver checks that a notification comes from the hub: it recomputes
// the signature over the timestamp and the exact body bytes, compares in
// constant time, and refuses old timestamps (replays).
func ExampleSign() {
	secret := []byte("a-shared-secret-of-32-characters")
	verify := func(h http.Header, body []byte, now time.Time) bool {
		ts := h.Get(subscriptions.HeaderTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			return false
		}
		want := subscriptions.Sign(secret, ts, body)
		return hmac.Equal([]byte(h.Get(subscriptions.HeaderSignature)), []byte(want))
	}
	body := []byte(`{"resourceType":"Observation","id":"o1"}`)
	h := http.Header{}
	h.Set(subscriptions.HeaderTimestamp, "1700000000")
	h.Set(subscriptions.HeaderSignature, subscriptions.Sign(secret, "1700000000", body))
	now := time.Unix(1700000060, 0)
	fmt.Println(verify(h, body, now), verify(h, []byte(`{"tampered":true}`), now), verify(h, body, now.Add(time.Hour)))
	// Output: true false false
}
