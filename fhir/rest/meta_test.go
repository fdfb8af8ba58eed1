package rest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// metaParams is a Parameters body with one meta parameter.
func metaParams(meta string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":` + meta + `}]}`
}

// returnedMeta reads the valueMeta of a $meta* answer.
func returnedMeta(t *testing.T, r response) map[string]any {
	t.Helper()
	mustStatus(t, r, 200)
	v := r.JSON(t)
	if v["resourceType"] != "Parameters" {
		t.Fatalf("got %v, want Parameters", v["resourceType"])
	}
	p := v["parameter"].([]any)[0].(map[string]any)
	if p["name"] != "return" {
		t.Fatalf("parameter %v, want return", p["name"])
	}
	return p["valueMeta"].(map[string]any)
}

// metaCodes lists a meta's profiles and system|code of tags and security
// labels, sorted, as "tag:sys|code".
func metaCodes(meta map[string]any) string {
	var out []string
	for _, k := range []string{"tag", "security"} {
		list, _ := meta[k].([]any)
		for _, c := range list {
			c := c.(map[string]any)
			out = append(out, fmt.Sprintf("%s:%v|%v", k, c["system"], c["code"]))
		}
	}
	list, _ := meta["profile"].([]any)
	for _, p := range list {
		out = append(out, "profile:"+p.(string))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// topKeys lists the top-level member names of a JSON object in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestMeta(t *testing.T) {
	s := newTestServer(t)
	// Members in an unusual order, and a decimal that must keep its digits.
	body := `{"resourceType":"Patient","id":"m1","meta":{"tag":[{"system":"urn:t","code":"old"}]},"name":[{"family":"Meta"}],"active":true,"extension":[{"url":"http://example.org/x","valueDecimal":1.50}],"gender":"other"}`
	mustStatus(t, s.do("PUT", "/Patient/m1", body), 201)
	orig := s.do("GET", "/Patient/m1", "")
	mustStatus(t, orig, 200)

	t.Run("Read", func(t *testing.T) {
		for _, method := range []string{"GET", "POST"} {
			m := returnedMeta(t, s.do(method, "/Patient/m1/$meta", ""))
			if got, want := metaCodes(m), "tag:urn:t|old"; got != want {
				t.Errorf("%s $meta: %s, want %s", method, got, want)
			}
			if m["versionId"] != "1" {
				t.Errorf("%s $meta: versionId %v, want 1", method, m["versionId"])
			}
		}
	})

	add := metaParams(`{"tag":[{"system":"urn:t","code":"a","display":"A"},{"system":"urn:t","code":"old","display":"dup"}],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],"profile":["http://example.org/StructureDefinition/p"]}`)
	wantAdded := "profile:http://example.org/StructureDefinition/p security:http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R tag:urn:t|a tag:urn:t|old"

	t.Run("Add", func(t *testing.T) {
		m := returnedMeta(t, s.do("POST", "/Patient/m1/$meta-add", add))
		if got := metaCodes(m); got != wantAdded {
			t.Errorf("meta %s, want %s", got, wantAdded)
		}
		if m["versionId"] != "2" {
			t.Errorf("versionId %v, want 2", m["versionId"])
		}
		r := s.do("GET", "/Patient/m1", "")
		mustStatus(t, r, 200)
		if et := r.Header.Get("ETag"); et != `W/"2"` {
			t.Errorf("ETag %s, want W/\"2\"", et)
		}
		if got := metaCodes(r.JSON(t)["meta"].(map[string]any)); got != wantAdded {
			t.Errorf("stored meta %s, want %s", got, wantAdded)
		}
		// Only meta changed: the other members, their order and their text.
		if got, want := fmt.Sprint(topKeys(t, r.Body)), fmt.Sprint(topKeys(t, orig.Body)); got != want {
			t.Errorf("members %s, want %s", got, want)
		}
		if !bytes.Contains(r.Body, []byte(`"valueDecimal":1.50`)) {
			t.Errorf("the decimal lost its digits: %s", r.Body)
		}
		if got, want := canonical(t, withoutMeta(r.JSON(t))), canonical(t, withoutMeta(orig.JSON(t))); got != want {
			t.Errorf("content changed:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("AddAgainIsIdempotent", func(t *testing.T) {
		m := returnedMeta(t, s.do("POST", "/Patient/m1/$meta-add", add))
		if got := metaCodes(m); got != wantAdded {
			t.Errorf("meta %s, want %s", got, wantAdded)
		}
		if m["versionId"] != "2" {
			t.Errorf("versionId %v, want 2 (nothing new to add)", m["versionId"])
		}
	})

	t.Run("Delete", func(t *testing.T) {
		del := metaParams(`{"tag":[{"system":"urn:t","code":"old"}],"profile":["http://example.org/StructureDefinition/p"]}`)
		m := returnedMeta(t, s.do("POST", "/Patient/m1/$meta-delete", del))
		want := "security:http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R tag:urn:t|a"
		if got := metaCodes(m); got != want {
			t.Errorf("meta %s, want %s", got, want)
		}
		if m["versionId"] != "3" {
			t.Errorf("versionId %v, want 3", m["versionId"])
		}
		if _, ok := m["profile"]; ok {
			t.Errorf("meta keeps an empty profile: %v", m)
		}
		// Removing what is not there stores nothing.
		m = returnedMeta(t, s.do("POST", "/Patient/m1/$meta-delete", del))
		if m["versionId"] != "3" {
			t.Errorf("versionId %v, want 3", m["versionId"])
		}
	})

	t.Run("History", func(t *testing.T) {
		es := entries(t, s.do("GET", "/Patient/m1/_history", ""))
		if len(es) != 3 {
			t.Fatalf("%d versions, want 3", len(es))
		}
		var got []string
		for _, e := range es {
			got = append(got, metaCodes(e["resource"].(map[string]any)["meta"].(map[string]any)))
		}
		if got[0] == got[1] || got[1] != wantAdded || got[2] != "tag:urn:t|old" {
			t.Errorf("history metas %q", got)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Observation/mc", `{"resourceType":"Observation","id":"mc","status":"final","code":{"text":"x"}}`), 201)
		const n = 6
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := range n {
			wg.Go(func() {
				r := s.do("POST", "/Observation/mc/$meta-add", metaParams(fmt.Sprintf(`{"tag":[{"system":"urn:c","code":"c%d"}]}`, i)))
				if r.Status != 200 {
					errs <- fmt.Sprintf("tag c%d: %d %s", i, r.Status, r.Body)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		m := returnedMeta(t, s.do("GET", "/Observation/mc/$meta", ""))
		tags, _ := m["tag"].([]any)
		if len(tags) != n || m["versionId"] != fmt.Sprint(n+1) {
			t.Errorf("after %d concurrent adds: %d tags, version %v; want %d and %d (no lost update)", n, len(tags), m["versionId"], n, n+1)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient/gone", `{"resourceType":"Patient","id":"gone"}`), 201)
		mustStatus(t, s.do("DELETE", "/Patient/gone", ""), 200)
		tag := metaParams(`{"tag":[{"code":"x"}]}`)
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			expr                     string
		}{
			{"Missing/meta", "GET", "/Patient/nobody/$meta", "", 404, ""},
			{"Missing/add", "POST", "/Patient/nobody/$meta-add", tag, 404, ""},
			{"Missing/delete", "POST", "/Patient/nobody/$meta-delete", tag, 404, ""},
			{"Deleted/meta", "GET", "/Patient/gone/$meta", "", 410, ""},
			{"Deleted/add", "POST", "/Patient/gone/$meta-add", tag, 410, ""},
			{"Deleted/delete", "POST", "/Patient/gone/$meta-delete", tag, 410, ""},
			{"UnknownType", "POST", "/Bogus/x/$meta-add", tag, 404, ""},
			{"NoMetaParameter", "POST", "/Patient/m1/$meta-add", `{"resourceType":"Parameters","parameter":[{"name":"other","valueString":"x"}]}`, 400, "meta"},
			{"NoParameters", "POST", "/Patient/m1/$meta-add", `{"resourceType":"Parameters"}`, 400, "meta"},
			{"NotParameters", "POST", "/Patient/m1/$meta-add", `{"resourceType":"Patient"}`, 400, "resourceType"},
			{"BadCoding", "POST", "/Patient/m1/$meta-add", metaParams(`{"tag":[{"display":"no code"}]}`), 400, "meta.tag[0]"},
			{"BadProfile", "POST", "/Patient/m1/$meta-delete", metaParams(`{"profile":"http://x"}`), 400, "meta.profile"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, expr := outcome(t, s.do(tc.method, tc.path, tc.body), tc.status)
				if expr != tc.expr {
					t.Errorf("expression %q, want %q", expr, tc.expr)
				}
			})
		}
		if r := s.do("GET", "/Patient/m1", ""); r.Header.Get("ETag") != `W/"3"` {
			t.Errorf("a refused call changed the resource: ETag %s", r.Header.Get("ETag"))
		}
	})
}

// withoutMeta drops meta for comparing content.
func withoutMeta(v map[string]any) map[string]any {
	out := map[string]any{}
	for k, x := range v {
		if k != "meta" {
			out[k] = x
		}
	}
	return out
}
