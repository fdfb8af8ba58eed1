package subscriptions

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// backportSubscription is a topic-based Subscription (Backport IG STU 1.1).
func backportSubscription(id, topic, endpoint, content string, heartbeat int, filters ...string) string {
	var fx []string
	for _, f := range filters {
		fx = append(fx, fmt.Sprintf(`{"url":%q,"valueString":%q}`, extFilterCriteria, f))
	}
	chx := ""
	if heartbeat > 0 {
		chx = fmt.Sprintf(`,"extension":[{"url":%q,"valueUnsignedInt":%d}]`, extHeartbeatPeriod, heartbeat)
	}
	return fmt.Sprintf(`{"resourceType":"Subscription","id":%q,"meta":{"profile":["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
		"status":"requested","reason":"test","criteria":%q,"_criteria":{"extension":[%s]},
		"channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json","_payload":{"extension":[{"url":%q,"valueCode":%q}]}%s}}`,
		id, topic, strings.Join(fx, ","), endpoint, extPayloadContent, content, chx)
}

// notified is what a test reads of a notification bundle.
type notified struct {
	Type, Status, Since, Topic string
	Events                     []string // event-number focus
	Entries                    []string // request method url, + "+resource" when the resource is there
}

func readBundle(t *testing.T, body []byte) notified {
	t.Helper()
	var b struct {
		ResourceType, Type string
		Entry              []struct {
			FullURL  string
			Resource json.RawMessage
			Request  struct{ Method, URL string }
		}
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "history" || len(b.Entry) == 0 {
		t.Fatalf("not a history Bundle: %s", body)
	}
	var p struct {
		ResourceType string
		Meta         struct{ Profile []string }
		Parameter    []struct {
			Name                                   string
			ValueString, ValueCode, ValueCanonical string
			ValueReference                         struct{ Reference string }
			Part                                   []struct {
				Name           string
				ValueString    string
				ValueReference struct{ Reference string }
			}
		}
	}
	if err := json.Unmarshal(b.Entry[0].Resource, &p); err != nil || p.ResourceType != "Parameters" || len(p.Meta.Profile) == 0 || p.Meta.Profile[0] != subscriptionStatusR4 {
		t.Fatalf("the first entry is not a SubscriptionStatus: %s", b.Entry[0].Resource)
	}
	var n notified
	for _, pr := range p.Parameter {
		switch pr.Name {
		case "type":
			n.Type = pr.ValueCode
		case "status":
			n.Status = pr.ValueCode
		case "events-since-subscription-start":
			n.Since = pr.ValueString
		case "topic":
			n.Topic = pr.ValueCanonical
		case "notification-event":
			var num, focus string
			for _, part := range pr.Part {
				switch part.Name {
				case "event-number":
					num = part.ValueString
				case "focus":
					focus = part.ValueReference.Reference
				}
			}
			n.Events = append(n.Events, num+" "+focus)
		}
	}
	for _, e := range b.Entry[1:] {
		s := e.Request.Method + " " + e.Request.URL
		if len(e.Resource) > 0 {
			s += " +resource"
		}
		n.Entries = append(n.Entries, s)
	}
	return n
}

func labObservation(id, code, status, category string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":%q,
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/p1"}}`, id, status, category, code)
}

// The lab-result topic with a code filter and full-resource content:
// handshake, numbered events, heartbeats, $status.
func TestBackportLabResult(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, nil)
	e.put("", "Subscription", "lab", backportSubscription("lab", TopicBase+"lab-result", rc.URL, "full-resource", 1, "Observation?code=http://loinc.org|1234-5"))
	e.waitStatus("lab", StatusActive)
	got := rc.waitCount(t, 1)
	if n := readBundle(t, got[0].Body); n.Type != "handshake" || n.Status != "requested" || n.Topic != TopicBase+"lab-result" || n.Since != "0" {
		t.Errorf("first notification %+v, want a handshake", n)
	}
	if ct := got[0].Header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("Content-Type %q", ct)
	}
	e.put("", "Observation", "a", labObservation("a", "1234-5", "final", "laboratory"))       // event 1
	e.put("", "Observation", "b", labObservation("b", "1234-5", "final", "vital-signs"))      // not laboratory
	e.put("", "Observation", "c", labObservation("c", "9999-9", "final", "laboratory"))       // another code
	e.put("", "Observation", "d", labObservation("d", "1234-5", "preliminary", "laboratory")) // not final
	e.put("", "Observation", "a", labObservation("a", "1234-5", "amended", "laboratory"))     // event 2
	var events []notified
	waitFor(t, 15*time.Second, func() error {
		events = events[:0]
		for _, g := range rc.notifications() {
			if n := readBundle(t, g.Body); n.Type == "event-notification" {
				events = append(events, n)
			}
		}
		if len(events) < 2 {
			return fmt.Errorf("%d event notifications", len(events))
		}
		return nil
	})
	want := []notified{
		{Type: "event-notification", Status: "active", Since: "1", Topic: TopicBase + "lab-result", Events: []string{"1 Observation/a/_history/1"}, Entries: []string{"POST Observation +resource"}},
		{Type: "event-notification", Status: "active", Since: "2", Topic: TopicBase + "lab-result", Events: []string{"2 Observation/a/_history/2"}, Entries: []string{"PUT Observation/a +resource"}},
	}
	if len(events) != 2 || fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events\n%+v\nwant\n%+v", events, want)
	}
	// Idle for more than the heartbeat period: a heartbeat.
	waitFor(t, 10*time.Second, func() error {
		for _, g := range rc.notifications() {
			if n := readBundle(t, g.Body); n.Type == "heartbeat" && n.Since == "2" && len(n.Entries) == 0 {
				return nil
			}
		}
		return fmt.Errorf("no heartbeat")
	})
	var st struct {
		ResourceType, Type string
		Entry              []struct{ Resource json.RawMessage }
	}
	if code := e.do("GET", "/Subscription/lab/$status", "", &st); code != 200 || st.Type != "searchset" || len(st.Entry) != 1 {
		t.Fatalf("$status: %d %+v", code, st)
	}
	var sp struct {
		Parameter []struct{ Name, ValueCode, ValueString string }
	}
	_ = json.Unmarshal(st.Entry[0].Resource, &sp)
	got2 := map[string]string{}
	for _, p := range sp.Parameter {
		got2[p.Name] = p.ValueCode + p.ValueString
	}
	if got2["type"] != "query-status" || got2["status"] != "active" || got2["events-since-subscription-start"] != "2" {
		t.Errorf("$status %v", got2)
	}
	// $events: the kept events, in a history Bundle like a notification.
	for _, tc := range []struct{ query, want string }{
		{"", "{query-event active 2 https://fhirhub.dev/fhir/SubscriptionTopic/lab-result [1 Observation/a/_history/1 2 Observation/a/_history/2] [POST Observation +resource PUT Observation/a +resource]}"},
		{"?eventsSinceNumber=2&content=id-only", "{query-event active 2 https://fhirhub.dev/fhir/SubscriptionTopic/lab-result [2 Observation/a/_history/2] [PUT Observation/a]}"},
		{"?eventsUntilNumber=1&content=empty", "{query-event active 2 https://fhirhub.dev/fhir/SubscriptionTopic/lab-result [1 ] []}"},
	} {
		code, body := e.raw("GET", "/Subscription/lab/$events"+tc.query)
		if code != 200 {
			t.Errorf("$events%s: %d %s", tc.query, code, body)
			continue
		}
		if got := fmt.Sprint(readBundle(t, body)); got != tc.want {
			t.Errorf("$events%s:\n%s\nwant\n%s", tc.query, got, tc.want)
		}
	}
	if code, _ := e.raw("GET", "/Subscription/lab/$events?eventsSinceNumber=zero"); code != 400 {
		t.Errorf("$events with a bad number: %d, want 400", code)
	}
	var caps struct {
		Rest []struct {
			Resource []struct {
				Type      string
				Extension []struct{ URL, ValueCanonical string }
			}
		}
	}
	e.do("GET", "/metadata", "", &caps)
	var topics []string
	for _, r := range caps.Rest[0].Resource {
		if r.Type == "Subscription" {
			for _, x := range r.Extension {
				topics = append(topics, x.ValueCanonical)
			}
		}
	}
	if len(topics) != len(Topics) {
		t.Errorf("the CapabilityStatement lists topics %v", topics)
	}
}

// The encounter-start-end topic with id-only content: an event when the
// status becomes in-progress or finished, not on other updates.
func TestBackportEncounterStartEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := newReceiver(t, nil)
	e.put("", "Subscription", "enc", backportSubscription("enc", TopicBase+"encounter-start-end", rc.URL, "id-only", 0, "Encounter?patient=Patient/p1"))
	e.waitStatus("enc", StatusActive)
	enc := func(status, class string) string {
		return fmt.Sprintf(`{"resourceType":"Encounter","id":"e1","status":%q,"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":%q},"subject":{"reference":"Patient/p1"}}`, status, class)
	}
	e.put("", "Encounter", "e1", enc("planned", "AMB"))                                                                                                                                                                   // v1: no
	e.put("", "Encounter", "e1", enc("in-progress", "AMB"))                                                                                                                                                               // v2: start
	e.put("", "Encounter", "e1", enc("in-progress", "EMER"))                                                                                                                                                              // v3: no (status unchanged)
	e.put("", "Encounter", "e1", enc("finished", "EMER"))                                                                                                                                                                 // v4: end
	e.put("", "Encounter", "e2", `{"resourceType":"Encounter","id":"e2","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p2"}}`) // another patient
	var events []string
	waitFor(t, 15*time.Second, func() error {
		events = events[:0]
		for _, g := range rc.notifications() {
			if n := readBundle(t, g.Body); n.Type == "event-notification" {
				events = append(events, strings.Join(n.Events, ";")+" | "+strings.Join(n.Entries, ";"))
			}
		}
		if len(events) < 2 {
			return fmt.Errorf("%d events", len(events))
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	want := "[1 Encounter/e1/_history/2 | PUT Encounter/e1 2 Encounter/e1/_history/4 | PUT Encounter/e1]"
	if fmt.Sprint(events) != want {
		t.Errorf("events %v, want %s", events, want)
	}
}

func TestBackportInvalidAndHandshakeFailure(t *testing.T) {
	e := newEnv(t, envOptions{retry: Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: 3}})
	down := newReceiver(t, func(int, *http.Request) int { return 500 })
	e.put("", "Subscription", "hs", backportSubscription("hs", TopicBase+"patient-change", down.URL, "empty", 0))
	if reason := e.waitStatus("hs", StatusError); !strings.Contains(reason, "handshake failed: endpoint answered 500") {
		t.Errorf("error %q", reason)
	}
	if n := down.attempts(); n != handshakeAttempts {
		t.Errorf("%d handshake attempts, want %d", n, handshakeAttempts)
	}
	ok := newReceiver(t, nil)
	for _, tc := range []struct{ name, body, want string }{
		{"UnknownTopic", backportSubscription("u", "https://example.org/topic/nope", ok.URL, "empty", 0), "not a topic"},
		{"FilterOtherType", backportSubscription("f", TopicBase+"lab-result", ok.URL, "empty", 0, "Patient?name=x"), "is about Observation"},
		{"BadFilter", backportSubscription("g", TopicBase+"lab-result", ok.URL, "empty", 0, "Observation?flavour=x"), "flavour"},
		{"BadContent", backportSubscription("c", TopicBase+"lab-result", ok.URL, "everything", 0), "payload content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v struct{ ID string }
			_ = json.Unmarshal([]byte(tc.body), &v)
			e.put("", "Subscription", v.ID, tc.body)
			if reason := e.waitStatus(v.ID, StatusError); !strings.Contains(reason, tc.want) {
				t.Errorf("error %q, want it to mention %q", reason, tc.want)
			}
		})
	}
	if code := e.do("GET", "/Subscription/hs/$status", "", nil); code != 200 {
		t.Errorf("$status of a subscription in error: %d", code)
	}
}

// raw sends a GET with the env's token and returns the status and body.
func (e *env) raw(method, path string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, nil)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
