package rest_test

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// seedRecords stores two patients' records: pa with observations,
// encounters and a condition, one observation naming a practitioner and an
// organization; pb with data of its own that pa's $everything must not show.
func seedRecords(t *testing.T, s *testServer) {
	t.Helper()
	put := func(path, body string) {
		t.Helper()
		r := s.do("PUT", path, body)
		if r.Status != 200 && r.Status != 201 {
			t.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
		}
	}
	put("/Organization/org1", `{"resourceType":"Organization","id":"org1","name":"Lab One"}`)
	put("/Organization/org2", `{"resourceType":"Organization","id":"org2","name":"Clinic Two"}`)
	put("/Practitioner/dr1", `{"resourceType":"Practitioner","id":"dr1","name":[{"family":"House"}]}`)
	put("/Practitioner/dr2", `{"resourceType":"Practitioner","id":"dr2","name":[{"family":"Quinn"}]}`)
	put("/Practitioner/dr3", `{"resourceType":"Practitioner","id":"dr3","name":[{"family":"Nobody"}]}`)
	put("/Patient/pa", `{"resourceType":"Patient","id":"pa","name":[{"family":"Alpha"}],"managingOrganization":{"reference":"Organization/org2"}}`)
	put("/Patient/pb", `{"resourceType":"Patient","id":"pb","name":[{"family":"Beta"}]}`)
	obs := func(id, patient, date, extra string) {
		t.Helper()
		eff := ""
		if date != "" {
			eff = fmt.Sprintf(`,"effectiveDateTime":%q`, date)
		}
		put("/Observation/"+id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}%s%s}`, id, patient, eff, extra))
	}
	obs("obs1", "pa", "2019-05-01", "")
	obs("obs2", "pa", "2020-06-15", "")
	obs("obs3", "pa", "2021-03-01", `,"performer":[{"reference":"Practitioner/dr1"},{"reference":"Organization/org1"}]`)
	obs("obsnd", "pa", "", "") // no clinical date
	obs("obsb", "pb", "2020-06-15", `,"performer":[{"reference":"Practitioner/dr2"}]`)
	put("/Encounter/enc1", `{"resourceType":"Encounter","id":"enc1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pa"},"period":{"start":"2020-01-10","end":"2020-01-11"}}`)
	put("/Encounter/enc2", `{"resourceType":"Encounter","id":"enc2","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pa"},"period":{"start":"2022-02-02"}}`)
	put("/Encounter/encb", `{"resourceType":"Encounter","id":"encb","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pb"}}`)
	put("/Condition/cond1", `{"resourceType":"Condition","id":"cond1","subject":{"reference":"Patient/pa"},"onsetDateTime":"2010-01-01"}`)
}

// refsOf returns Type/id of a searchset's entries of one mode, sorted.
func refsOf(t *testing.T, r response, mode string) []string {
	t.Helper()
	var out []string
	for _, e := range entries(t, r) {
		if e["search"].(map[string]any)["mode"] != mode {
			continue
		}
		res := e["resource"].(map[string]any)
		out = append(out, res["resourceType"].(string)+"/"+res["id"].(string))
	}
	sort.Strings(out)
	return out
}

func TestEverything(t *testing.T) {
	s := newTestServer(t)
	seedRecords(t, s)
	all := "[Condition/cond1 Encounter/enc1 Encounter/enc2 Observation/obs1 Observation/obs2 Observation/obs3 Observation/obsnd Patient/pa]"

	t.Run("Instance", func(t *testing.T) {
		r := s.do("GET", "/Patient/pa/$everything", "")
		if got := fmt.Sprint(refsOf(t, r, "match")); got != all {
			t.Errorf("matches %s, want %s", got, all)
		}
		if got, want := fmt.Sprint(refsOf(t, r, "include")), "[Organization/org1 Organization/org2 Practitioner/dr1]"; got != want {
			t.Errorf("included %s, want %s", got, want)
		}
		v := r.JSON(t)
		if v["type"] != "searchset" {
			t.Errorf("Bundle.type = %v, want searchset", v["type"])
		}
		for _, e := range entries(t, r) {
			res := e["resource"].(map[string]any)
			if want := s.URL + "/" + res["resourceType"].(string) + "/" + res["id"].(string); e["fullUrl"] != want {
				t.Errorf("fullUrl %v, want %s", e["fullUrl"], want)
			}
		}
		if next := link(t, r, "next"); next != "" {
			t.Errorf("one page should have no next link, got %s", next)
		}
		if self := link(t, r, "self"); !strings.HasSuffix(self, "/Patient/pa/$everything") {
			t.Errorf("self link %s", self)
		}
	})

	t.Run("Dates", func(t *testing.T) {
		for _, tc := range []struct{ query, match, include string }{
			{"start=2020-01-01&end=2020-12-31",
				"[Condition/cond1 Encounter/enc1 Observation/obs2 Observation/obsnd Patient/pa]", "[Organization/org2]"},
			{"start=2021-01-01",
				"[Condition/cond1 Encounter/enc2 Observation/obs3 Observation/obsnd Patient/pa]", "[Organization/org1 Organization/org2 Practitioner/dr1]"},
			{"end=2019-12-31",
				"[Condition/cond1 Observation/obs1 Observation/obsnd Patient/pa]", "[Organization/org2]"},
			{"start=2020-01-11&end=2020-01-11", // the last day of enc1
				"[Condition/cond1 Encounter/enc1 Observation/obsnd Patient/pa]", "[Organization/org2]"},
		} {
			t.Run(tc.query, func(t *testing.T) {
				r := s.do("GET", "/Patient/pa/$everything?"+tc.query, "")
				if got := fmt.Sprint(refsOf(t, r, "match")); got != tc.match {
					t.Errorf("matches %s, want %s", got, tc.match)
				}
				if got := fmt.Sprint(refsOf(t, r, "include")); got != tc.include {
					t.Errorf("included %s, want %s", got, tc.include)
				}
			})
		}
	})

	t.Run("Type", func(t *testing.T) {
		r := s.do("GET", "/Patient/pa/$everything?_type=Observation,Practitioner", "")
		if got, want := fmt.Sprint(refsOf(t, r, "match")), "[Observation/obs1 Observation/obs2 Observation/obs3 Observation/obsnd]"; got != want {
			t.Errorf("matches %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(refsOf(t, r, "include")), "[Practitioner/dr1]"; got != want {
			t.Errorf("included %s, want %s", got, want)
		}
	})

	t.Run("POST", func(t *testing.T) {
		want := "[Condition/cond1 Encounter/enc1 Observation/obs2 Observation/obsnd Patient/pa]"
		params := `{"resourceType":"Parameters","parameter":[{"name":"start","valueDate":"2020-01-01"},{"name":"end","valueDate":"2020-12-31"}]}`
		r := s.do("POST", "/Patient/pa/$everything", params)
		if got := fmt.Sprint(refsOf(t, r, "match")); got != want {
			t.Errorf("Parameters body: matches %s, want %s", got, want)
		}
		r = s.do("POST", "/Patient/pa/$everything", "start=2020-01-01&end=2020-12-31", "Content-Type: application/x-www-form-urlencoded")
		if got := fmt.Sprint(refsOf(t, r, "match")); got != want {
			t.Errorf("form body: matches %s, want %s", got, want)
		}
	})

	t.Run("TypeLevel", func(t *testing.T) {
		r := s.do("GET", "/Patient/$everything", "")
		want := "[Condition/cond1 Encounter/enc1 Encounter/enc2 Encounter/encb Observation/obs1 Observation/obs2 Observation/obs3 Observation/obsb Observation/obsnd Patient/pa Patient/pb]"
		if got := fmt.Sprint(refsOf(t, r, "match")); got != want {
			t.Errorf("matches %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(refsOf(t, r, "include")), "[Organization/org1 Organization/org2 Practitioner/dr1 Practitioner/dr2]"; got != want {
			t.Errorf("included %s, want %s", got, want)
		}
		got, _ := collectPages(t, s, "/Patient/$everything?_count=3", nil)
		if fmt.Sprint(got) != want {
			t.Errorf("paged %v, want %s", got, want)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		created := ""
		wrote := false
		got, pages := collectPages(t, s, "/Patient/pa/$everything?_count=2", func(page int) {
			if page != 1 {
				return
			}
			// Writes between pages: a new Observation (its type is not
			// reached yet), an update of a resource already shown, and of
			// one not shown yet.
			r := s.do("POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"late"},"subject":{"reference":"Patient/pa"}}`)
			mustStatus(t, r, 201)
			created = "Observation/" + r.JSON(t)["id"].(string)
			mustStatus(t, s.do("PUT", "/Patient/pa", `{"resourceType":"Patient","id":"pa","name":[{"family":"Alpha-Changed"}],"managingOrganization":{"reference":"Organization/org2"}}`), 200)
			mustStatus(t, s.do("PUT", "/Encounter/enc2", `{"resourceType":"Encounter","id":"enc2","status":"cancelled","class":{"code":"AMB"},"subject":{"reference":"Patient/pa"},"period":{"start":"2022-02-02"}}`), 200)
			wrote = true
		})
		if !wrote {
			t.Fatal("only one page; paging was not exercised")
		}
		want := strings.TrimSuffix(strings.TrimPrefix(all, "["), "]") + " " + created
		wantList := strings.Fields(want)
		sort.Strings(wantList)
		if fmt.Sprint(got) != fmt.Sprint(wantList) {
			t.Errorf("paged %v, want %v", got, wantList)
		}
		if pages != 5 {
			t.Errorf("%d pages, want 5 (9 matches, 2 a page, no empty last page)", pages)
		}
	})

	t.Run("Since", func(t *testing.T) {
		// Wait out the millisecond of the last write, then change one.
		last := time.Now()
		for deadline := time.Now().Add(time.Second); !time.Now().After(last.Add(2 * time.Millisecond)); {
			if time.Now().After(deadline) {
				t.Fatal("the clock did not move")
			}
		}
		since := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		mustStatus(t, s.do("PUT", "/Observation/obs3", `{"resourceType":"Observation","id":"obs3","status":"amended","code":{"text":"x"},"subject":{"reference":"Patient/pa"},"effectiveDateTime":"2021-03-01","performer":[{"reference":"Practitioner/dr1"}]}`), 200)
		r := s.do("GET", "/Patient/pa/$everything?_since="+url.QueryEscape(since), "")
		if got, want := fmt.Sprint(refsOf(t, r, "match")), "[Observation/obs3]"; got != want {
			t.Errorf("matches %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(refsOf(t, r, "include")), "[Practitioner/dr1]"; got != want {
			t.Errorf("included %s, want %s", got, want)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		mustStatus(t, s.do("PUT", "/Patient/gone", `{"resourceType":"Patient","id":"gone"}`), 201)
		mustStatus(t, s.do("DELETE", "/Patient/gone", ""), 200)
		for _, tc := range []struct {
			path   string
			status int
			expr   string
		}{
			{"/Patient/nobody/$everything", 404, ""},
			{"/Patient/gone/$everything", 404, ""},
			{"/Observation/obs1/$everything", 404, ""},
			{"/Patient/pa/$everything?start=2020-13-01", 400, "start"},
			{"/Patient/pa/$everything?end=soon", 400, "end"},
			{"/Patient/pa/$everything?start=2021&end=2020", 400, "end"},
			{"/Patient/pa/$everything?_since=yesterday", 400, "_since"},
			{"/Patient/pa/$everything?_type=Bogus", 400, "_type"},
			{"/Patient/pa/$everything?_count=0", 400, "_count"},
			{"/Patient/pa/$everything?_cursor=nonsense", 400, "_cursor"},
		} {
			t.Run(tc.path, func(t *testing.T) {
				_, expr := outcome(t, s.do("GET", tc.path, ""), tc.status)
				if expr != tc.expr {
					t.Errorf("expression %q, want %q", expr, tc.expr)
				}
			})
		}
		t.Run("UnknownParameter", func(t *testing.T) {
			r := s.do("GET", "/Patient/pa/$everything?colour=blue&_count=50", "")
			if self := link(t, r, "self"); strings.Contains(self, "colour") {
				t.Errorf("self link %s keeps the ignored parameter", self)
			}
			if !strings.Contains(string(r.Body), `"mode":"outcome"`) {
				t.Error("no OperationOutcome entry reports the ignored parameter")
			}
			_, expr := outcome(t, s.do("GET", "/Patient/pa/$everything?colour=blue", "", "Prefer: handling=strict"), 400)
			if expr != "colour" {
				t.Errorf("expression %q, want colour", expr)
			}
		})
	})

	t.Run("CapabilityStatement", func(t *testing.T) {
		v := s.do("GET", "/metadata", "").JSON(t)
		rest := v["rest"].([]any)[0].(map[string]any)
		var pat map[string]any
		for _, r := range rest["resource"].([]any) {
			if r.(map[string]any)["type"] == "Patient" {
				pat = r.(map[string]any)
			}
		}
		ops := func(v any) string {
			var out []string
			list, _ := v.([]any)
			for _, o := range list {
				o := o.(map[string]any)
				out = append(out, o["name"].(string)+"="+o["definition"].(string))
			}
			return strings.Join(out, " ")
		}
		if got, want := ops(pat["operation"]), "everything=http://hl7.org/fhir/OperationDefinition/Patient-everything"; got != want {
			t.Errorf("Patient operations %s, want %s", got, want)
		}
		want := "meta=http://hl7.org/fhir/OperationDefinition/Resource-meta meta-add=http://hl7.org/fhir/OperationDefinition/Resource-meta-add meta-delete=http://hl7.org/fhir/OperationDefinition/Resource-meta-delete"
		if got := ops(rest["operation"]); got != want {
			t.Errorf("rest.operation %s, want %s", got, want)
		}
	})
}

// collectPages follows next links from path and returns the Type/id of
// every match, sorted, failing on a resource shown twice or a page over
// its _count. between runs after each page (numbered from 1).
func collectPages(t *testing.T, s *testServer, path string, between func(page int)) ([]string, int) {
	t.Helper()
	count := 0
	if u, err := url.Parse(path); err == nil {
		fmt.Sscan(u.Query().Get("_count"), &count)
	}
	var got []string
	seen := map[string]bool{}
	pages := 0
	for next := path; next != ""; {
		if pages++; pages > 50 {
			t.Fatal("more than 50 pages")
		}
		r := s.do("GET", next, "")
		ms := refsOf(t, r, "match")
		if len(ms) == 0 {
			t.Errorf("page %d is empty", pages)
		}
		if count > 0 && len(ms) > count {
			t.Errorf("page %d has %d matches, more than _count=%d", pages, len(ms), count)
		}
		for _, m := range ms {
			if seen[m] {
				t.Errorf("%s shown twice (page %d)", m, pages)
			}
			seen[m] = true
			got = append(got, m)
		}
		if between != nil {
			between(pages)
		}
		next = link(t, r, "next")
	}
	sort.Strings(got)
	return got, pages
}
