// The Synthea oracle: long (minutes), so skipped under -short and the race
// detector; run alone with go test -run TestSynthea ./fhir/rest/.

package rest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/fhirhub/fhirhub/fhir"
	"github.com/fhirhub/fhirhub/fhir/mongostore"
	"github.com/fhirhub/fhirhub/fhir/search"
	"github.com/fhirhub/fhirhub/fhir/search/searchtest"
)

// syntheaDir is the SMART Synthea sample set (615 patients, 189,111
// resources): $FHIR_SYNTHEA_DIR, or the copy kept beside the repository.
var syntheaDir = func() string {
	if d := os.Getenv("FHIR_SYNTHEA_DIR"); d != "" {
		return d
	}
	return "../../../shared/synthea/smart-r4"
}()

// TestSyntheaSearch loads the whole Synthea sample set into a server and
// checks searches of every kind against an oracle: the expected answers
// computed with plain Go over the resources' JSON, by the R4 search rules,
// without the search package.
func TestSyntheaSearch(t *testing.T) {
	skipSynthea(t)
	s := newTestServer(t)
	o := loadSynthea(t, s, syntheaDir)
	runSyntheaCases(t, s, o)
}

// mongoPatients is how many patient Bundles TestSyntheaSearchMongo loads.
// FerretDB is slow, and its writes slow down as data accumulates: ten
// Bundles (2,695 resources) took 10 to 20 minutes (writes averaging 1.8 s),
// one (180) took 5 s.
const mongoPatients = 3

// TestSyntheaSearchMongo runs the same oracle on the MongoDB engine, on a
// subset: the shared Organizations and Practitioners and the first
// mongoPatients patients.
func TestSyntheaSearchMongo(t *testing.T) {
	skipSynthea(t)
	if _, ok := any((*mongostore.Store)(nil)).(search.Backend); !ok {
		t.Skip("the MongoDB engine does not implement search.Backend")
	}
	dir := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(syntheaDir, "*Information*.json.gz"))
	for i := 1; i <= mongoPatients; i++ {
		files = append(files, filepath.Join(syntheaDir, fmt.Sprintf("patient-%04d.json.gz", i)))
	}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	engine = "mongo"
	defer func() { engine = "sqlite" }()
	s := newTestServer(t)
	o := loadSynthea(t, s, dir)
	runSyntheaCases(t, s, o)
}

// TestSyntheaLoader checks searchtest.Synthea on small Bundles with what the
// SMART set lacks: conditional references, ifNoneExist, a resource without
// an id, a forward reference.
func TestSyntheaLoader(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, gz bool) {
		var buf bytes.Buffer
		if gz {
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(content))
			zw.Close()
		} else {
			buf.WriteString(content)
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hospitalInformation1.json.gz", `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:org-1","resource":{"resourceType":"Organization","id":"org-1","identifier":[{"system":"urn:s","value":"o1"}],"name":"A"}}]}`, true)
	write("patient-0001.json.gz", `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:p-1","resource":{"resourceType":"Patient","id":"p-1"}},
		{"fullUrl":"urn:uuid:org-1","resource":{"resourceType":"Organization","id":"org-1","name":"A copy"}},
		{"fullUrl":"urn:uuid:e-1","resource":{"resourceType":"Encounter","id":"e-1",
			"subject":{"reference":"urn:uuid:p-1"},"serviceProvider":{"reference":"Organization?identifier=urn:s|o1"},
			"participant":[{"individual":{"reference":"urn:uuid:pr-1"}}]}},
		{"fullUrl":"urn:uuid:org-2","resource":{"resourceType":"Organization","identifier":[{"system":"urn:s","value":"o1"}]},
			"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:s|o1"}},
		{"fullUrl":"urn:uuid:pr-1","resource":{"resourceType":"Practitioner","name":[{"text":"a \"quoted\" reference: {\"reference\":\"urn:uuid:x\"}"}]}},
		{"fullUrl":"urn:uuid:o-1","resource":{"resourceType":"Observation","id":"o-1","performer":[{"reference":"urn:uuid:org-2"}],
			"subject":{"reference":"Patient/p-1"},"valueQuantity":{"value":1.50}}}]}`, true)
	write("patient-0002.json.gz", "not a Bundle: the license text", false)

	var got []string
	n, err := searchtest.Synthea(dir, func(typ, id string, body []byte) error {
		got = append(got, typ+"/"+id+" "+string(body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`Organization/org-1 {"resourceType":"Organization","id":"org-1","identifier":[{"system":"urn:s","value":"o1"}],"name":"A"}`,
		`Patient/p-1 {"resourceType":"Patient","id":"p-1"}`,
		`Encounter/e-1 {"resourceType":"Encounter","id":"e-1","subject":{"reference":"Patient/p-1"},"serviceProvider":{"reference":"Organization/org-1"},"participant":[{"individual":{"reference":"Practitioner/pr-1"}}]}`,
		`Practitioner/pr-1 {"resourceType":"Practitioner","id":"pr-1","name":[{"text":"a \"quoted\" reference: {\"reference\":\"urn:uuid:x\"}"}]}`,
		`Observation/o-1 {"resourceType":"Observation","id":"o-1","performer":[{"reference":"Organization/org-1"}],"subject":{"reference":"Patient/p-1"},"valueQuantity":{"value":1.50}}`,
	}
	if n != len(want) || !slices.Equal(got, want) {
		t.Errorf("got %d resources:\n%s\nwant %d:\n%s", n, strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}

	write("patient-0003.json.gz", `{"resourceType":"Bundle","entry":[
		{"fullUrl":"urn:uuid:e-2","resource":{"resourceType":"Encounter","subject":{"reference":"urn:uuid:nobody"}}}]}`, true)
	if _, err := searchtest.Synthea(dir, func(string, string, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "urn:uuid:nobody") {
		t.Errorf("a dangling urn:uuid reference: got error %v, want one naming it", err)
	}
}

func skipSynthea(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("long: loads the Synthea sample set")
	}
	if raceEnabled {
		t.Skip("long: the Synthea load is too slow under the race detector")
	}
	if _, err := os.Stat(syntheaDir); err != nil {
		t.Skipf("no Synthea sample set: %v", err)
	}
}

// loadSynthea stores the set through the server's Service (no HTTP), in
// transactions of a few hundred resources from several writers, and keeps
// what the oracle needs.
func loadSynthea(t *testing.T, s *testServer, dir string) *oracle {
	t.Helper()
	type item struct {
		typ, id string
		body    []byte
	}
	o := &oracle{res: map[string]map[string]map[string]any{}}
	batches := make(chan []item, 4)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	ctx := context.Background()
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			for batch := range batches {
				ws := make([]fhir.TxWrite, len(batch))
				for i, it := range batch {
					ws[i] = fhir.TxWrite{Op: fhir.OpUpdate, Type: it.typ, ID: it.id, Body: it.body, Entry: i}
				}
				_, err := s.Service.Transaction(ctx, ws)
				for _, it := range batch {
					if err == nil {
						err = o.add(it.typ, it.id, it.body)
					}
				}
				if err != nil {
					mu.Lock()
					if len(failures) < 5 {
						failures = append(failures, err.Error())
					}
					mu.Unlock()
				}
			}
		})
	}
	var batch []item
	n, err := searchtest.Synthea(dir, func(typ, id string, body []byte) error {
		batch = append(batch, item{typ, id, body})
		if len(batch) == 250 {
			batches <- batch
			batch = nil
		}
		return nil
	})
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) > 0 {
		t.Fatalf("some resources were not stored; first failures: %s", strings.Join(failures, "; "))
	}
	d := time.Since(start)
	t.Logf("loaded %d resources in %s (%.0f/s)", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	if o.count() != n {
		t.Fatalf("the oracle holds %d resources, want %d", o.count(), n)
	}
	return o
}

// The oracle: the loaded resources, decoded, and the R4 search rules written
// out plainly for the cases below.

type resource = map[string]any

type oracle struct {
	mu  sync.Mutex
	res map[string]map[string]resource // type → id → resource
}

func (o *oracle) add(typ, id string, body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // decimals keep their digits
	var r resource
	if err := dec.Decode(&r); err != nil {
		return err
	}
	if r["resourceType"] != typ || r["id"] != id {
		return fmt.Errorf("the loader gave %s/%s for a body of %v/%v", typ, id, r["resourceType"], r["id"])
	}
	if bytes.Contains(body, []byte(`"urn:uuid:`)) {
		return fmt.Errorf("a urn:uuid reference was left in %s/%s", typ, id)
	}
	delete(r, "text") // the narrative: never searched, and large
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.res[typ] == nil {
		o.res[typ] = map[string]resource{}
	}
	o.res[typ][id] = r
	return nil
}

func (o *oracle) count() int {
	n := 0
	for _, m := range o.res {
		n += len(m)
	}
	return n
}

// where returns Type/id of every resource of typ for which pred holds, sorted.
func (o *oracle) where(typ string, pred func(r resource) bool) []string {
	var out []string
	for id, r := range o.res[typ] {
		if pred(r) {
			out = append(out, typ+"/"+id)
		}
	}
	sort.Strings(out)
	return out
}

// resolve returns the resource a reference "Type/id" names, or nil.
func (o *oracle) resolve(ref string) resource {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok {
		return nil
	}
	return o.res[typ][id]
}

// get walks a path of member names, through arrays, and returns every value
// it reaches.
func get(v any, path ...string) []any {
	vals := []any{v}
	for _, p := range path {
		var next []any
		for _, x := range vals {
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			switch y := m[p].(type) {
			case nil:
			case []any:
				next = append(next, y...)
			default:
				next = append(next, y)
			}
		}
		vals = next
	}
	return vals
}

func strs(vals []any) []string {
	var out []string
	for _, v := range vals {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

// refs returns the reference strings of the References at path.
func refs(r resource, path ...string) []string { return strs(get(r, append(path, "reference")...)) }

// pair is a token of a resource: a Coding's system and code, an Identifier's
// system and value, or a code with no system.
type pair struct{ system, code string }

// codings returns the Codings of the Codings and CodeableConcepts in vals.
func codings(vals []any) []pair {
	var out []pair
	for _, v := range vals {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := m["coding"]; ok {
			for _, c := range get(m, "coding") {
				out = append(out, pair{str(first(get(c, "system"))), str(first(get(c, "code")))})
			}
			continue
		}
		if code, ok := m["code"].(string); ok {
			out = append(out, pair{str(m["system"]), code})
		}
	}
	return out
}

func first(vals []any) any {
	if len(vals) == 0 {
		return nil
	}
	return vals[0]
}

// identifiers returns the system and value of the Identifiers in vals.
func identifiers(vals []any) []pair {
	var out []pair
	for _, v := range vals {
		out = append(out, pair{str(first(get(v, "system"))), str(first(get(v, "value")))})
	}
	return out
}

// codes returns plain codes (no system).
func codes(vals []any) []pair {
	var out []pair
	for _, s := range strs(vals) {
		out = append(out, pair{"", s})
	}
	return out
}

// token is a token search value: code, system|code, |code or system|.
type token struct {
	system, code string
	hasSystem    bool
}

func tok(s string) token {
	if sys, code, ok := strings.Cut(s, "|"); ok {
		return token{sys, code, true}
	}
	return token{code: s}
}

func (t token) matches(p pair) bool {
	if t.hasSystem {
		return p.system == t.system && (t.code == "" || p.code == t.code)
	}
	return p.code == t.code
}

func anyToken(ps []pair, values ...string) bool {
	for _, v := range values {
		t := tok(v)
		for _, p := range ps {
			if t.matches(p) {
				return true
			}
		}
	}
	return false
}

// fold is the string search normal form: lower case, accents removed,
// whitespace runs as one space.
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

func startsWith(vals []string, q string) bool {
	q = fold(q)
	for _, v := range vals {
		if strings.HasPrefix(fold(v), q) {
			return true
		}
	}
	return false
}

func containsFold(vals []string, q string) bool {
	q = fold(q)
	for _, v := range vals {
		if strings.Contains(fold(v), q) {
			return true
		}
	}
	return false
}

// nameParts are the strings a HumanName search looks at.
func nameParts(vals []any) []string {
	var out []string
	for _, k := range []string{"family", "given", "prefix", "suffix", "text"} {
		out = append(out, strs(get(map[string]any{"v": vals}, "v", k))...)
	}
	return out
}

// addressParts are the strings an Address search looks at.
func addressParts(vals []any) []string {
	var out []string
	for _, k := range []string{"line", "city", "district", "state", "postalCode", "country", "text"} {
		out = append(out, strs(get(map[string]any{"v": vals}, "v", k))...)
	}
	return out
}

// span is the range of instants [lo, hi) in Unix milliseconds that a date,
// dateTime or Period stands for; open ends are ±inf.
type span struct{ lo, hi int64 }

// dateSpan parses a FHIR date or dateTime at its precision; dates without a
// time zone are UTC (the server's convention).
func dateSpan(s string) (span, bool) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	} {
		if len(s) == len(f.layout) {
			t, err := time.Parse(f.layout, s)
			if err != nil {
				return span{}, false
			}
			return span{t.UnixMilli(), f.next(t).UnixMilli()}, true
		}
	}
	t, err := time.Parse(time.RFC3339, s) // fractional seconds allowed
	if err != nil {
		return span{}, false
	}
	prec := time.Second
	if i := strings.IndexByte(s, '.'); i > 0 {
		frac := s[i+1:]
		digits := len(frac) - len(strings.TrimLeft(frac, "0123456789"))
		prec = time.Duration(math.Pow10(9 - min(digits, 9)))
	}
	return span{t.UnixMilli(), t.Add(prec).UnixMilli()}, true
}

// spanOf reads a date value: a date/dateTime string or a Period.
func spanOf(v any) (span, bool) {
	switch x := v.(type) {
	case string:
		return dateSpan(x)
	case map[string]any:
		sp := span{math.MinInt64, math.MaxInt64}
		if s, ok := x["start"].(string); ok {
			st, ok := dateSpan(s)
			if !ok {
				return sp, false
			}
			sp.lo = st.lo
		}
		if e, ok := x["end"].(string); ok {
			en, ok := dateSpan(e)
			if !ok {
				return sp, false
			}
			sp.hi = en.hi
		}
		return sp, true
	}
	return span{}, false
}

// dateMatches applies the R4 prefix rules (search.html#prefix) to a target
// range r and a search value's range q.
func dateMatches(prefix string, r, q span) bool {
	eq := r.lo >= q.lo && r.hi <= q.hi
	switch prefix {
	case "eq":
		return eq
	case "ne":
		return !eq
	case "gt": // the range above the value overlaps the target
		return r.hi > q.hi
	case "lt":
		return r.lo < q.lo
	case "ge":
		return r.hi > q.hi || eq
	case "le":
		return r.lo < q.lo || eq
	case "sa": // no overlap, and the target lies after
		return r.lo >= q.hi
	case "eb":
		return r.hi <= q.lo
	}
	panic("prefix " + prefix)
}

// prefixed splits a search value into its prefix (eq by default) and the rest.
func prefixed(v string) (string, string) {
	if len(v) > 2 && strings.Contains("eq ne gt lt ge le sa eb ap", v[:2]) && (v[2] >= '0' && v[2] <= '9' || v[2] == '-') {
		return v[:2], v[2:]
	}
	return "eq", v
}

// anyDate: does any date value in vals match the search value v?
func anyDate(vals []any, v string) bool {
	prefix, rest := prefixed(v)
	q, ok := dateSpan(rest)
	if !ok {
		panic("bad date in a case: " + v)
	}
	for _, x := range vals {
		if r, ok := spanOf(x); ok && dateMatches(prefix, r, q) {
			return true
		}
	}
	return false
}

// decimal reads a JSON number (json.Number keeps its digits) exactly.
func decimal(v any) (*big.Rat, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	default:
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// numberMatches applies the R4 number rules: eq and ne use the value's
// implied precision (170 is [169.5, 170.5)), the others the exact value, ap
// is within 10%.
func numberMatches(v string, x *big.Rat) bool {
	prefix, rest := prefixed(v)
	n, ok := decimal(rest)
	if !ok {
		panic("bad number in a case: " + v)
	}
	decimals := 0
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		decimals = len(rest) - i - 1
	}
	half := new(big.Rat).SetFrac(big.NewInt(5), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals+1)), nil))
	lo, hi := new(big.Rat).Sub(n, half), new(big.Rat).Add(n, half)
	inRange := x.Cmp(lo) >= 0 && x.Cmp(hi) < 0
	switch prefix {
	case "eq":
		return inRange
	case "ne":
		return !inRange
	case "gt", "sa":
		return x.Cmp(n) > 0
	case "lt", "eb":
		return x.Cmp(n) < 0
	case "ge":
		return x.Cmp(n) >= 0
	case "le":
		return x.Cmp(n) <= 0
	case "ap":
		d := new(big.Rat).Abs(new(big.Rat).Sub(x, n))
		return d.Cmp(new(big.Rat).Mul(new(big.Rat).Abs(n), big.NewRat(1, 10))) <= 0
	}
	panic("prefix " + prefix)
}

// quantityMatches: value[|system|code]; with a system the Quantity's system
// and code must match it, without one the code may match code or unit.
func quantityMatches(q any, v string) bool {
	num, system, code := v, "", ""
	if parts := strings.Split(v, "|"); len(parts) == 3 {
		num, system, code = parts[0], parts[1], parts[2]
	}
	x, ok := decimal(first(get(q, "value")))
	if !ok {
		return false
	}
	qc, qu, qs := str(first(get(q, "code"))), str(first(get(q, "unit"))), str(first(get(q, "system")))
	if system != "" && (qs != system || qc != code) {
		return false
	}
	if system == "" && code != "" && qc != code && qu != code {
		return false
	}
	return numberMatches(num, x)
}

func anyQuantity(vals []any, v string) bool {
	for _, q := range vals {
		if quantityMatches(q, v) {
			return true
		}
	}
	return false
}

// targets returns the references at path that name resources of typ.
func targets(r resource, typ string, path ...string) []string {
	var out []string
	for _, ref := range refs(r, path...) {
		if strings.HasPrefix(ref, typ+"/") {
			out = append(out, ref)
		}
	}
	return out
}

func hasRef(r resource, ref string, path ...string) bool {
	return slices.Contains(refs(r, path...), ref)
}

// The searches.

// searchCase is one search and the oracle's answer.
type searchCase struct {
	name  string
	query string   // Type?params
	want  []string // Type/id of the matches, sorted
	// include, when not nil, is the Type/id set _include/_revinclude must add.
	include []string
	// sortKey, when set, checks the order of the matches: their keys must
	// come in the order of the oracle's sorted keys (ties in any order).
	sortKey func(ref string) string
	desc    bool
	// countOnly compares only the total (_summary=count).
	countOnly bool
	// conditional sends the query's parameters as If-None-Exist of a create:
	// one match answers 200 with it, several 412 (no match would create, so
	// no case has none).
	conditional bool
	// known marks a disagreement traced to the server: the case is skipped.
	known string
}

func syntheaCases(o *oracle) []searchCase {
	obs, enc, pat := "Observation", "Encounter", "Patient"
	// Values picked from the data, so the cases also fit a subset.
	obsOf := map[string]int{}
	for _, r := range o.res[obs] {
		for _, ref := range targets(r, pat, "subject") {
			obsOf[ref]++
		}
	}
	bigPat := maxKey(obsOf) // the patient with the most Observations
	p := o.resolve(bigPat)
	pid := strings.TrimPrefix(bigPat, "Patient/")
	families := map[string]int{}
	accented := ""
	for _, r := range o.res[pat] {
		for _, f := range strs(get(r, "name", "family")) {
			families[f]++
			if fold(f) != strings.ToLower(f) && (accented == "" || f < accented) {
				accented = f
			}
		}
	}
	family := maxKey(families)
	encByOrg, encByPract, obsByEnc := map[string]int{}, map[string]int{}, map[string]int{}
	for _, r := range o.res[enc] {
		for _, ref := range refs(r, "serviceProvider") {
			encByOrg[ref]++
		}
		for _, ref := range refs(r, "participant", "individual") {
			encByPract[ref]++
		}
	}
	for _, r := range o.res[obs] {
		for _, ref := range refs(r, "encounter") {
			obsByEnc[ref]++
		}
	}
	org := o.resolve(maxKey(encByOrg))
	orgWord := strings.ToLower(strings.Fields(str(org["name"]))[0])
	pract := o.resolve(maxKey(encByPract))
	practFamily := strs(get(pract, "name", "family"))[0]
	bigEnc := maxKey(obsByEnc)
	var ssn, mrn string
	for _, id := range identifiers(get(p, "identifier")) {
		switch id.system {
		case "http://hl7.org/fhir/sid/us-ssn":
			ssn = id.code
		case "http://hospital.smarthealthit.org":
			mrn = id.code
		}
	}
	birth := str(p["birthDate"])
	if accented == "" {
		accented = "Rodríguez"
	}
	// A body height Observation of bigPat, the middle one of its
	// Observations' times, and a result of one of its DiagnosticReports.
	var height, midTime, result string
	if hs := o.where(obs, func(r resource) bool {
		return hasRef(r, bigPat, "subject") && anyToken(codings(get(r, "code")), "http://loinc.org|8302-2")
	}); len(hs) > 0 {
		height = hs[0]
	}
	var times []string
	for _, ref := range o.where(obs, func(r resource) bool { return hasRef(r, bigPat, "subject") }) {
		times = append(times, strs(get(o.resolve(ref), "effectiveDateTime"))...)
	}
	slices.Sort(times)
	midTime = times[len(times)/2]
	for _, ref := range o.where("DiagnosticReport", func(r resource) bool { return hasRef(r, bigPat, "subject") }) {
		if rs := refs(o.resolve(ref), "result"); len(rs) > 0 {
			result = rs[0]
			break
		}
	}

	code := func(r resource) []pair { return codings(get(r, "code")) }
	names := func(r resource) []string { return nameParts(get(r, "name")) }
	referred := func(from []string, typ string, path ...string) []string {
		var out []string
		for _, ref := range from {
			out = append(out, targets(o.resolve(ref), typ, path...)...)
		}
		return set(out)
	}
	patientOf := func(r resource, path ...string) []resource {
		var out []resource
		for _, ref := range targets(r, pat, path...) {
			if t := o.resolve(ref); t != nil {
				out = append(out, t)
			}
		}
		return out
	}
	effective := func(r resource) []any { return get(r, "effectiveDateTime") }
	period := func(r resource) []any { return get(r, "period") }
	heights := o.where(obs, func(r resource) bool { return anyToken(code(r), "http://loinc.org|8302-2") })
	type keyed func(ref string) string
	instantKey := func(path string) keyed {
		return func(ref string) string {
			sp, _ := spanOf(first(get(o.resolve(ref), path)))
			return fmt.Sprintf("%020d", sp.lo+1<<62) // non-negative: sorts as text
		}
	}

	cases := []searchCase{
		// token
		{name: "token/system|code", query: "Observation?code=http://loinc.org|8302-2", want: heights},
		{name: "token/code", query: "Observation?code=29463-7",
			want: o.where(obs, func(r resource) bool { return anyToken(code(r), "29463-7") })},
		{name: "token/|code (no system)", query: "Observation?code=|8302-2",
			want: o.where(obs, func(r resource) bool { return anyToken(code(r), "|8302-2") })},
		{name: "token/system|", query: "Condition?code=http://snomed.info/sct|",
			want: o.where("Condition", func(r resource) bool { return anyToken(code(r), "http://snomed.info/sct|") })},
		{name: "token/OR", query: "Condition?code=http://snomed.info/sct|44054006,http://snomed.info/sct|38341003",
			want: o.where("Condition", func(r resource) bool {
				return anyToken(code(r), "http://snomed.info/sct|44054006", "http://snomed.info/sct|38341003")
			})},
		{name: "token/code (gender)", query: "Patient?gender=female",
			want: o.where(pat, func(r resource) bool { return anyToken(codes(get(r, "gender")), "female") })},
		{name: "token/identifier system|value", query: "Patient?identifier=http://hl7.org/fhir/sid/us-ssn|" + ssn,
			want: o.where(pat, func(r resource) bool {
				return anyToken(identifiers(get(r, "identifier")), "http://hl7.org/fhir/sid/us-ssn|"+ssn)
			})},
		{name: "token/identifier value", query: "Patient?identifier=" + mrn,
			want: o.where(pat, func(r resource) bool { return anyToken(identifiers(get(r, "identifier")), mrn) })},
		{name: "token/Coding (class)", query: "Encounter?class=EMER",
			want: o.where(enc, func(r resource) bool { return anyToken(codings(get(r, "class")), "EMER") })},
		{name: "token/category", query: "Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
			want: o.where(obs, func(r resource) bool {
				return anyToken(codings(get(r, "category")), "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs")
			})},
		{name: "token/:not", query: "Encounter?class:not=AMB",
			want: o.where(enc, func(r resource) bool { return !anyToken(codings(get(r, "class")), "AMB") })},
		{name: "token/_tag", query: "Patient?_tag=https://smarthealthit.org/tags|synthea-5-2019",
			want: o.where(pat, func(r resource) bool {
				return anyToken(codings(get(r, "meta", "tag")), "https://smarthealthit.org/tags|synthea-5-2019")
			})},
		{name: "token/valueCodeableConcept", query: "Observation?value-concept=http://snomed.info/sct|449868002",
			want: o.where(obs, func(r resource) bool {
				return anyToken(codings(get(r, "valueCodeableConcept")), "http://snomed.info/sct|449868002")
			})},
		{name: "token/Coding in a backbone (modality)", query: "ImagingStudy?modality=DX",
			want: o.where("ImagingStudy", func(r resource) bool { return anyToken(codings(get(r, "series", "modality")), "DX") })},
		{name: "token/_id", query: "Patient?_id=" + pid + ",nobody",
			want: []string{bigPat}},

		// string
		{name: "string/prefix", query: "Patient?name=smi",
			want: o.where(pat, func(r resource) bool { return startsWith(names(r), "smi") })},
		{name: "string/case", query: "Patient?family=" + strings.ToUpper(family),
			want: o.where(pat, func(r resource) bool { return startsWith(strs(get(r, "name", "family")), family) })},
		{name: "string/accent", query: "Patient?family=" + url.QueryEscape(fold(accented)),
			want: o.where(pat, func(r resource) bool { return startsWith(strs(get(r, "name", "family")), fold(accented)) })},
		{name: "string/accent in given", query: "Patient?given=maria",
			want: o.where(pat, func(r resource) bool { return startsWith(strs(get(r, "name", "given")), "maria") })},
		{name: "string/:exact", query: "Patient?family:exact=" + url.QueryEscape(accented),
			want: o.where(pat, func(r resource) bool { return slices.Contains(strs(get(r, "name", "family")), accented) })},
		{name: "string/:exact is exact", query: "Patient?family:exact=" + url.QueryEscape(fold(accented)),
			want: o.where(pat, func(r resource) bool {
				return slices.Contains(strs(get(r, "name", "family")), fold(accented))
			})},
		{name: "string/:contains", query: "Patient?name:contains=ERS",
			want: o.where(pat, func(r resource) bool { return containsFold(names(r), "ers") })},
		{name: "string/address", query: "Patient?address-city=boston",
			want: o.where(pat, func(r resource) bool { return startsWith(strs(get(r, "address", "city")), "boston") })},
		{name: "string/address (any part)", query: "Patient?address=massachu",
			want: o.where(pat, func(r resource) bool { return startsWith(addressParts(get(r, "address")), "massachu") })},
		{name: "string/Organization name", query: "Organization?name=" + orgWord,
			want: o.where("Organization", func(r resource) bool {
				return startsWith(append(strs(get(r, "name")), strs(get(r, "alias"))...), orgWord)
			})},
		{name: "string/Practitioner name", query: "Practitioner?name=" + url.QueryEscape(practFamily),
			want: o.where("Practitioner", func(r resource) bool { return startsWith(names(r), practFamily) })},

		// date
		{name: "date/eq year (date)", query: "Patient?birthdate=" + birth[:4],
			want: o.where(pat, func(r resource) bool { return anyDate(get(r, "birthDate"), birth[:4]) })},
		{name: "date/eq day (date)", query: "Patient?birthdate=" + birth,
			want: o.where(pat, func(r resource) bool { return anyDate(get(r, "birthDate"), birth) })},
		{name: "date/ge and lt (date)", query: "Patient?birthdate=ge1990&birthdate=lt2000-07",
			want: o.where(pat, func(r resource) bool {
				return anyDate(get(r, "birthDate"), "ge1990") && anyDate(get(r, "birthDate"), "lt2000-07")
			})},
		{name: "date/eq month (dateTime)", query: "Observation?code=8302-2&date=2015-06",
			want: o.where(obs, func(r resource) bool { return anyToken(code(r), "8302-2") && anyDate(effective(r), "2015-06") })},
		{name: "date/eq day (dateTime)", query: "Observation?date=2018-03-14",
			want: o.where(obs, func(r resource) bool { return anyDate(effective(r), "2018-03-14") })},
		{name: "date/gt dateTime", query: "Observation?patient=" + pid + "&date=gt" + url.QueryEscape(midTime),
			want: o.where(obs, func(r resource) bool {
				return hasRef(r, bigPat, "subject") && anyDate(effective(r), "gt"+midTime)
			})},
		{name: "date/eq month (Period)", query: "Encounter?date=2019-05",
			want: o.where(enc, func(r resource) bool { return anyDate(period(r), "2019-05") })},
		{name: "date/ge and lt (Period)", query: "Encounter?date=ge2018-05-01&date=lt2018-06-01",
			want: o.where(enc, func(r resource) bool {
				return anyDate(period(r), "ge2018-05-01") && anyDate(period(r), "lt2018-06-01")
			})},
		{name: "date/sa (Period)", query: "Encounter?date=sa2019-01-01",
			want: o.where(enc, func(r resource) bool { return anyDate(period(r), "sa2019-01-01") })},
		{name: "date/eb (Period)", query: "Encounter?date=eb1960-01-01",
			want: o.where(enc, func(r resource) bool { return anyDate(period(r), "eb1960-01-01") })},
		{name: "date/le open Period", query: "CarePlan?date=le2000",
			want: o.where("CarePlan", func(r resource) bool { return anyDate(period(r), "le2000") })},
		{name: "date/ge open Period", query: "CarePlan?date=ge2015",
			want: o.where("CarePlan", func(r resource) bool { return anyDate(period(r), "ge2015") })},
		{name: "date/onset", query: "Condition?onset-date=lt1960",
			want: o.where("Condition", func(r resource) bool {
				return anyDate(append(get(r, "onsetDateTime"), get(r, "onsetPeriod")...), "lt1960")
			})},
		{name: "date/ne", query: "Immunization?vaccine-code=140&date=ne2015",
			want: o.where("Immunization", func(r resource) bool {
				return anyToken(codings(get(r, "vaccineCode")), "140") && anyDate(get(r, "occurrenceDateTime"), "ne2015")
			})},

		// quantity
		{name: "quantity/gt with units", query: "Observation?value-quantity=gt190|http://unitsofmeasure.org|cm",
			want: o.where(obs, func(r resource) bool {
				return anyQuantity(get(r, "valueQuantity"), "gt190|http://unitsofmeasure.org|cm")
			})},
		{name: "quantity/eq precision", query: "Observation?code=8302-2&value-quantity=170",
			want: o.where(obs, func(r resource) bool {
				return anyToken(code(r), "8302-2") && anyQuantity(get(r, "valueQuantity"), "170")
			})},
		{name: "quantity/eq decimals", query: "Observation?value-quantity=80.5||kg",
			want: o.where(obs, func(r resource) bool { return anyQuantity(get(r, "valueQuantity"), "80.5||kg") })},
		{name: "quantity/le", query: "Observation?code=29463-7&value-quantity=le4.5",
			want: o.where(obs, func(r resource) bool {
				return anyToken(code(r), "29463-7") && anyQuantity(get(r, "valueQuantity"), "le4.5")
			})},
		{name: "quantity/ap", query: "Observation?code=39156-5&value-quantity=ap40",
			want: o.where(obs, func(r resource) bool {
				return anyToken(code(r), "39156-5") && anyQuantity(get(r, "valueQuantity"), "ap40")
			})},

		// reference
		{name: "reference/Type/id", query: "Observation?subject=" + bigPat,
			want: o.where(obs, func(r resource) bool { return hasRef(r, bigPat, "subject") })},
		{name: "reference/id", query: "Condition?patient=" + pid,
			want: o.where("Condition", func(r resource) bool { return hasRef(r, bigPat, "subject") })},
		{name: "reference/:Type", query: "Encounter?subject:Patient=" + pid,
			want: o.where(enc, func(r resource) bool { return hasRef(r, bigPat, "subject") })},
		{name: "reference/array (DiagnosticReport.result)", query: "DiagnosticReport?result=" + result,
			want: o.where("DiagnosticReport", func(r resource) bool { return hasRef(r, result, "result") })},
		{name: "reference/Organization", query: "Encounter?service-provider=" + str(org["id"]) + "&class=IMP",
			want: o.where(enc, func(r resource) bool {
				return hasRef(r, "Organization/"+str(org["id"]), "serviceProvider") && anyToken(codings(get(r, "class")), "IMP")
			})},

		// :missing
		{name: "missing/true", query: "Patient?death-date:missing=true",
			want: o.where(pat, func(r resource) bool { return len(get(r, "deceasedDateTime")) == 0 })},
		{name: "missing/false", query: "Patient?death-date:missing=false",
			want: o.where(pat, func(r resource) bool { return len(get(r, "deceasedDateTime")) > 0 })},
		{name: "missing/reference", query: "Encounter?participant:missing=true",
			want: o.where(enc, func(r resource) bool { return len(refs(r, "participant", "individual")) == 0 })},

		// chains
		{name: "chain/patient.name", query: "Observation?patient.name=" + url.QueryEscape(family) + "&code=8302-2",
			want: o.where(obs, func(r resource) bool {
				if !anyToken(code(r), "8302-2") {
					return false
				}
				for _, pt := range patientOf(r, "subject") {
					if startsWith(names(pt), family) {
						return true
					}
				}
				return false
			})},
		{name: "chain/subject:Patient.birthdate", query: "Encounter?subject:Patient.birthdate=" + birth[:7],
			want: o.where(enc, func(r resource) bool {
				for _, pt := range patientOf(r, "subject") {
					if anyDate(get(pt, "birthDate"), birth[:7]) {
						return true
					}
				}
				return false
			})},
		{name: "chain/service-provider.name", query: "Encounter?service-provider.name=" + orgWord + "&date=2017",
			want: o.where(enc, func(r resource) bool {
				if !anyDate(period(r), "2017") {
					return false
				}
				for _, ref := range targets(r, "Organization", "serviceProvider") {
					if t := o.resolve(ref); t != nil && startsWith(strs(get(t, "name")), orgWord) {
						return true
					}
				}
				return false
			})},
		{name: "chain/two levels", query: "Observation?encounter.service-provider.name=" + orgWord + "&code=8302-2",
			want: o.where(obs, func(r resource) bool {
				if !anyToken(code(r), "8302-2") {
					return false
				}
				for _, e := range targets(r, enc, "encounter") {
					for _, ref := range targets(o.resolve(e), "Organization", "serviceProvider") {
						if t := o.resolve(ref); t != nil && startsWith(strs(get(t, "name")), orgWord) {
							return true
						}
					}
				}
				return false
			})},
		{name: "chain/two levels to Patient", query: "Claim?encounter.patient.family=" + url.QueryEscape(family),
			want: o.where("Claim", func(r resource) bool {
				for _, e := range targets(r, enc, "item", "encounter") {
					for _, pt := range patientOf(o.resolve(e), "subject") {
						if startsWith(strs(get(pt, "name", "family")), family) {
							return true
						}
					}
				}
				return false
			})},

		// _has
		{name: "_has", query: "Patient?_has:Observation:patient:code=2885-2",
			want: referred(o.where(obs, func(r resource) bool { return anyToken(code(r), "2885-2") }), pat, "subject")},
		{name: "_has with date", query: "Patient?_has:Condition:patient:code=http://snomed.info/sct|44054006&birthdate=lt1970",
			want: intersect(o.where(pat, func(r resource) bool { return anyDate(get(r, "birthDate"), "lt1970") }),
				referred(o.where("Condition", func(r resource) bool { return anyToken(code(r), "http://snomed.info/sct|44054006") }), pat, "subject"))},

		// composite
		{name: "composite/code-value-quantity", query: "Observation?code-value-quantity=http://loinc.org|8302-2$gt185",
			want: o.where(obs, func(r resource) bool {
				return anyToken(code(r), "http://loinc.org|8302-2") && anyQuantity(get(r, "valueQuantity"), "gt185")
			})},
		{name: "composite/component-code-value-quantity", query: "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt150",
			want: o.where(obs, func(r resource) bool {
				for _, c := range get(r, "component") {
					if anyToken(codings(get(c, "code")), "http://loinc.org|8480-6") && anyQuantity(get(c, "valueQuantity"), "gt150") {
						return true
					}
				}
				return false
			})},
		{name: "composite/component (diastolic)", query: "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt90",
			want: o.where(obs, func(r resource) bool {
				for _, c := range get(r, "component") {
					if anyToken(codings(get(c, "code")), "http://loinc.org|8462-4") && anyQuantity(get(c, "valueQuantity"), "gt90") {
						return true
					}
				}
				return false
			})},

		// several parameters, as conditional criteria would use them
		{name: "several/patient+code+date", query: "Observation?patient=" + pid + "&code=http://loinc.org|29463-7&date=ge" + midTime[:4],
			want: o.where(obs, func(r resource) bool {
				return hasRef(r, bigPat, "subject") && anyToken(code(r), "http://loinc.org|29463-7") && anyDate(effective(r), "ge"+midTime[:4])
			})},
		{name: "several/gender+birthdate+state", query: "Patient?gender=male&birthdate=lt1960&address-state=massachusetts",
			want: o.where(pat, func(r resource) bool {
				return anyToken(codes(get(r, "gender")), "male") && anyDate(get(r, "birthDate"), "lt1960") &&
					startsWith(strs(get(r, "address", "state")), "massachusetts")
			})},
		{name: "several/status+intent+authoredon", query: "MedicationRequest?status=active&intent=order&authoredon=ge2018",
			want: o.where("MedicationRequest", func(r resource) bool {
				return anyToken(codes(get(r, "status")), "active") && anyToken(codes(get(r, "intent")), "order") &&
					anyDate(get(r, "authoredOn"), "ge2018")
			})},

		{name: "conditional/one match", conditional: true,
			query: "Patient?family=" + url.QueryEscape(strs(get(p, "name", "family"))[0]) + "&birthdate=" + birth + "&gender=" + str(p["gender"]),
			want: o.where(pat, func(r resource) bool {
				return startsWith(strs(get(r, "name", "family")), strs(get(p, "name", "family"))[0]) &&
					anyDate(get(r, "birthDate"), birth) && anyToken(codes(get(r, "gender")), str(p["gender"]))
			})},
		{name: "conditional/several match", conditional: true,
			query: "Observation?patient=" + pid + "&code=http://loinc.org|8302-2",
			want: o.where(obs, func(r resource) bool {
				return hasRef(r, bigPat, "subject") && anyToken(code(r), "http://loinc.org|8302-2")
			})},

		// totals
		{name: "total/_summary=count", query: "Observation?code=72514-3&_summary=count", countOnly: true,
			want: o.where(obs, func(r resource) bool { return anyToken(code(r), "72514-3") })},
		{name: "total/accurate over 10,000", query: "Observation?category=laboratory&_total=accurate",
			want: o.where(obs, func(r resource) bool { return anyToken(codings(get(r, "category")), "laboratory") })},
		{name: "total/:not over 10,000", query: "Observation?code:not=8302-2&_total=accurate",
			want: o.where(obs, func(r resource) bool { return !anyToken(code(r), "8302-2") })},
	}

	cases = append(cases, searchCase{name: "date/Period (Procedure)", query: "Procedure?date=2012-11",
		want: o.where("Procedure", func(r resource) bool {
			return anyDate(append(get(r, "performedDateTime"), get(r, "performedPeriod")...), "2012-11")
		})})

	// _include and _revinclude
	{
		q := "Observation?code=http://loinc.org|2885-2&date=ge2019"
		want := o.where(obs, func(r resource) bool {
			return anyToken(code(r), "http://loinc.org|2885-2") && anyDate(effective(r), "ge2019")
		})
		var inc []string
		for _, ref := range want {
			inc = append(inc, targets(o.resolve(ref), pat, "subject")...)
		}
		cases = append(cases, searchCase{name: "_include", query: q + "&_include=Observation:patient", want: want, include: set(inc)})
	}
	{
		want := o.where(enc, func(r resource) bool {
			return anyToken(codings(get(r, "class")), "EMER") && anyDate(period(r), "ge2018")
		})
		var inc []string
		for _, ref := range want {
			e := o.resolve(ref)
			inc = append(inc, refs(e, "serviceProvider")...)
			inc = append(inc, refs(e, "participant", "individual")...)
		}
		cases = append(cases, searchCase{name: "_include two", query: "Encounter?class=EMER&date=ge2018&_include=Encounter:service-provider&_include=Encounter:participant",
			want: want, include: set(inc)})
	}
	{
		encs := refs(o.resolve(height), "encounter")
		inc := append(encs, refs(o.resolve(encs[0]), "serviceProvider")...)
		cases = append(cases, searchCase{name: "_include:iterate", query: "Observation?_id=" + strings.TrimPrefix(height, "Observation/") +
			"&_include=Observation:encounter&_include:iterate=Encounter:service-provider", want: []string{height}, include: set(inc)})
	}
	cases = append(cases, searchCase{name: "_revinclude", query: "Patient?_id=" + pid + "&_revinclude=Observation:patient",
		want: []string{bigPat}, include: o.where(obs, func(r resource) bool { return hasRef(r, bigPat, "subject") })})
	{
		inc := o.where(obs, func(r resource) bool { return hasRef(r, bigEnc, "encounter") })
		inc = append(inc, o.where("Condition", func(r resource) bool { return hasRef(r, bigEnc, "encounter") })...)
		inc = append(inc, o.where("Procedure", func(r resource) bool { return hasRef(r, bigEnc, "encounter") })...)
		cases = append(cases, searchCase{name: "_revinclude three", query: "Encounter?_id=" + strings.TrimPrefix(bigEnc, "Encounter/") +
			"&_revinclude=Observation:encounter&_revinclude=Condition:encounter&_revinclude=Procedure:encounter",
			want: []string{bigEnc}, include: set(inc)})
	}

	// _sort
	cases = append(cases,
		searchCase{name: "_sort/birthdate", query: "Patient?family=" + url.QueryEscape(family) + "&_sort=birthdate",
			want:    o.where(pat, func(r resource) bool { return startsWith(strs(get(r, "name", "family")), family) }),
			sortKey: func(ref string) string { return str(o.resolve(ref)["birthDate"]) }},
		searchCase{name: "_sort/-date", query: "Observation?patient=" + pid + "&code=8302-2&_sort=-date",
			want:    o.where(obs, func(r resource) bool { return hasRef(r, bigPat, "subject") && anyToken(code(r), "8302-2") }),
			sortKey: instantKey("effectiveDateTime"), desc: true},
		searchCase{name: "_sort/two keys", query: "Patient?gender=female&birthdate=ge1990&_sort=family,-birthdate",
			want: o.where(pat, func(r resource) bool {
				return anyToken(codes(get(r, "gender")), "female") && anyDate(get(r, "birthDate"), "ge1990")
			}),
			sortKey: func(ref string) string {
				r := o.resolve(ref)
				fams := strs(get(r, "name", "family"))
				slices.Sort(fams)
				// family ascending, then birthDate descending
				b := []byte(str(r["birthDate"]))
				for i := range b {
					b[i] = 0xff - b[i]
				}
				return fold(strings.Join(fams[:1], "")) + "\x00" + string(b)
			}},
	)
	return cases
}

// set sorts and deduplicates.
func set(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// intersect returns the elements of the sorted lists a and b in both.
func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); ok {
			out = append(out, x)
		}
	}
	return out
}

// maxKey returns the key with the largest count (the smallest key on ties).
func maxKey(m map[string]int) string {
	best, n := "", -1
	for k, c := range m {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// minimal are valid resources for conditional creates.
var minimal = map[string]string{
	"Patient":     `{"resourceType":"Patient"}`,
	"Observation": `{"resourceType":"Observation","status":"final","code":{"text":"conditional create"}}`,
}

// bigAnswer is the size above which a case checks the total and a sample
// instead of every page.
const bigAnswer = 20000

func runSyntheaCases(t *testing.T, s *testServer, o *oracle) {
	cases := syntheaCases(o)
	start := time.Now()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.known != "" {
				t.Skip("known bug: " + c.known)
			}
			checkSearch(t, s, c)
		})
	}
	t.Logf("%d searches in %s", len(cases), time.Since(start).Round(time.Millisecond))
}

func checkSearch(t *testing.T, s *testServer, c searchCase) {
	t.Logf("%s: %d matches, %d included expected", c.query, len(c.want), len(c.include))
	switch {
	case c.conditional:
		typ, crit, _ := strings.Cut(c.query, "?")
		req, err := http.NewRequest(http.MethodPost, s.URL+"/"+typ, strings.NewReader(minimal[typ]))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("If-None-Exist", crit)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			ResourceType, ID string
		}
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &got)
		switch {
		case len(c.want) == 1 && (resp.StatusCode != http.StatusOK || got.ResourceType+"/"+got.ID != c.want[0]):
			t.Errorf("got %d %s/%s, want 200 %s", resp.StatusCode, got.ResourceType, got.ID, c.want[0])
		case len(c.want) > 1 && resp.StatusCode != http.StatusPreconditionFailed:
			t.Errorf("got %d, want 412: %d match", resp.StatusCode, len(c.want))
		case len(c.want) == 0:
			t.Fatal("a conditional case must match: with no match the create would change the data")
		}
		return
	case c.countOnly:
		pg := getPage(t, s.URL+"/"+c.query)
		if pg.Total == nil || *pg.Total != int64(len(c.want)) || len(pg.Entry) != 0 {
			t.Errorf("got total %v and %d entries, want total %d and none", deref(pg.Total), len(pg.Entry), len(c.want))
		}
		return
	case len(c.want) > bigAnswer:
		q := c.query + "&_count=1000"
		if !strings.Contains(q, "_total=accurate") {
			q += "&_total=accurate"
		}
		pg := getPage(t, s.URL+"/"+q)
		if pg.Total == nil || *pg.Total != int64(len(c.want)) {
			t.Errorf("got total %v, want %d", deref(pg.Total), len(c.want))
		}
		got, _ := pg.split(t)
		if len(got) != 1000 {
			t.Errorf("got %d matches on the first page, want 1000", len(got))
		}
		for _, ref := range got {
			if _, ok := slices.BinarySearch(c.want, ref); !ok {
				t.Errorf("%s matched, but the oracle says it should not", ref)
			}
		}
		return
	}
	got, inc, total := searchAll(t, s, c.query)
	if strings.Contains(c.query, "_total=accurate") && total != int64(len(c.want)) {
		t.Errorf("got total %d, want %d", total, len(c.want))
	}
	if c.sortKey != nil {
		var keys, want []string
		for _, ref := range got {
			keys = append(keys, c.sortKey(ref))
		}
		for _, ref := range c.want {
			want = append(want, c.sortKey(ref))
		}
		slices.Sort(want)
		if c.desc {
			slices.Reverse(want)
		}
		if !slices.Equal(keys, want) {
			t.Errorf("order of the keys:\n got %q\nwant %q", keys, want)
		}
	}
	sort.Strings(got)
	compareSets(t, "matches", got, c.want)
	if c.include != nil {
		sort.Strings(inc)
		compareSets(t, "included", inc, c.include)
	} else if len(inc) > 0 {
		t.Errorf("%d resources included, want none", len(inc))
	}
}

func deref(p *int64) any {
	if p == nil {
		return "none"
	}
	return *p
}

// compareSets reports the difference of two sorted lists.
func compareSets(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var extra, missing []string
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	t.Errorf("%s: got %d, want %d; %d unexpected %v; %d missing %v", what, len(got), len(want),
		len(extra), head(extra), len(missing), head(missing))
}

func head(xs []string) []string { return xs[:min(len(xs), 5)] }

// searchPage is what the test reads of a searchset Bundle.
type searchPage struct {
	Total *int64 `json:"total"`
	Link  []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		} `json:"resource"`
		Search struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

func (p *searchPage) split(t *testing.T) (matches, included []string) {
	t.Helper()
	for _, e := range p.Entry {
		ref := e.Resource.ResourceType + "/" + e.Resource.ID
		switch e.Search.Mode {
		case "match":
			matches = append(matches, ref)
		case "include":
			included = append(included, ref)
		default:
			t.Errorf("an entry with search mode %q: the server warned about the query", e.Search.Mode)
		}
	}
	return matches, included
}

func (p *searchPage) next() string {
	for _, l := range p.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

func getPage(t *testing.T, u string) *searchPage {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	var p searchPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// searchAll follows the next links with pages of 1000 and returns the
// matches in the order they came, the included resources, and the total of
// the first page (-1 when absent). No resource may come twice.
func searchAll(t *testing.T, s *testServer, query string) (matches, included []string, total int64) {
	t.Helper()
	u := s.URL + "/" + query + "&_count=1000"
	total = -1
	seen := map[string]bool{}
	for i := 0; u != ""; i++ {
		if i > 200 {
			t.Fatal("more than 200 pages")
		}
		p := getPage(t, u)
		if i == 0 && p.Total != nil {
			total = *p.Total
		}
		m, inc := p.split(t)
		for _, ref := range m {
			if seen[ref] {
				t.Fatalf("%s came twice while paging", ref)
			}
			seen[ref] = true
		}
		matches = append(matches, m...)
		included = append(included, inc...)
		u = p.next()
	}
	return matches, set(included), total
}
