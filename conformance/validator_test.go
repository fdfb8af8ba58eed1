package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirhub/fhirhub/fhir"
)

// knownInvalidExamples are the official R4 examples that are not valid R4,
// with one of their issues and how many issues they have.
var knownInvalidExamples = map[string]struct {
	issue  wantIssue
	issues int
}{
	// 32 of its nested items lack linkId, which
	// Questionnaire.item requires (1..1).
	"Questionnaire-qs1": {wantIssue{fhir.IssueRequired, "Questionnaire.item[0].item[1].item[0].linkId", `required element "linkId" is missing`}, 32},
}

func TestNewValidator(t *testing.T) {
	start := time.Now()
	v, err := NewValidator()
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	t.Logf("NewValidator compiled %d schemas in %v", len(v.schemas), time.Since(start))
	for _, typ := range ResourceTypes() {
		if !v.KnownType(typ) {
			t.Errorf("KnownType(%q) = false, want true", typ)
		}
	}
	for _, typ := range []string{"", "Resource", "DomainResource", "patient", "Foo", "HumanName", "Patient_Contact", "ResourceList"} {
		if v.KnownType(typ) {
			t.Errorf("KnownType(%q) = true, want false", typ)
		}
	}
}

func TestValidateOfficialExamples(t *testing.T) {
	v := testValidator(t)
	exs := officialExamples(t)
	valid := 0
	for _, ex := range exs {
		t.Run(ex.Name, func(t *testing.T) {
			err := v.Validate(context.Background(), ex.Type, ex.Value)
			want, invalid := knownInvalidExamples[ex.Name]
			switch {
			case !invalid && err != nil:
				t.Errorf("got %v, want no error; issues:\n%s", err, issuesText(err))
			case invalid && err == nil:
				t.Errorf("got no error, want the known issue %v", want.issue)
			case invalid:
				if !hasIssue(err, want.issue) {
					t.Errorf("the issue %v is not among:\n%s", want.issue, issuesText(err))
				}
				if got := len(fhir.AsError(err).Issues); got != want.issues {
					t.Errorf("got %d issues, want %d:\n%s", got, want.issues, issuesText(err))
				}
			default:
				valid++
			}
		})
	}
	t.Logf("%d of %d official examples are valid; %d are known to be invalid", valid, len(exs), len(knownInvalidExamples))
	if want := len(exs) - len(knownInvalidExamples); valid != want && !t.Failed() {
		t.Errorf("got %d valid examples, want %d", valid, want)
	}
}

// wantIssue is an issue a test expects: the code and expression exactly, a
// part of the diagnostics.
type wantIssue struct {
	code fhir.IssueType
	expr string
	diag string
}

func (w wantIssue) String() string { return fmt.Sprintf("%s at %s: %s", w.code, w.expr, w.diag) }

func (w wantIssue) matches(is fhir.Issue) bool {
	return is.Code == w.code && slices.Equal(is.Expression, []string{w.expr}) && strings.Contains(is.Diagnostics, w.diag)
}

func hasIssue(err error, w wantIssue) bool {
	fe := fhir.AsError(err)
	if fe == nil {
		return false
	}
	return slices.ContainsFunc(fe.Issues, w.matches)
}

func issuesText(err error) string {
	fe := fhir.AsError(err)
	if fe == nil {
		return "  (not a *fhir.Error: " + err.Error() + ")"
	}
	var b strings.Builder
	for _, is := range fe.Issues {
		fmt.Fprintf(&b, "  %s %s at %v: %s\n", is.Severity, is.Code, is.Expression, is.Diagnostics)
	}
	return b.String()
}

func TestValidateInvalid(t *testing.T) {
	v := testValidator(t)
	tests := []struct {
		name string
		typ  string
		json string
		want []wantIssue
	}{
		{
			name: "UnknownElement",
			typ:  "Patient",
			json: `{"resourceType":"Patient","foo":1,"_bar":{"id":"x"}}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Patient._bar", `unknown element "_bar"`},
				{fhir.IssueStructure, "Patient.foo", `unknown element "foo"`},
			},
		},
		{
			name: "WrongPrimitiveType",
			typ:  "Patient",
			json: `{"resourceType":"Patient","active":"true","deceasedBoolean":1}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Patient.active", `"active" must be a JSON boolean (true or false), not a string`},
				{fhir.IssueStructure, "Patient.deceasedBoolean", `"deceasedBoolean" must be a JSON boolean (true or false), not a number`},
			},
		},
		{
			name: "BadDateFormat",
			typ:  "Patient",
			json: `{"resourceType":"Patient","birthDate":"1974-13-25"}`,
			want: []wantIssue{
				{fhir.IssueValue, "Patient.birthDate", `"birthDate" must match the FHIR date format (YYYY, YYYY-MM or YYYY-MM-DD); got "1974-13-25"`},
			},
		},
		{
			name: "BadDateTimeInChoice",
			typ:  "Observation",
			json: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2020-01-01T10:00"}`,
			want: []wantIssue{
				{fhir.IssueValue, "Observation.effectiveDateTime", `must match the FHIR dateTime format`},
			},
		},
		{
			name: "MissingStatusAndCode",
			typ:  "Observation",
			json: `{"resourceType":"Observation","subject":{"reference":"Patient/1"}}`,
			want: []wantIssue{
				{fhir.IssueRequired, "Observation.code", `required element "code" is missing`},
				{fhir.IssueRequired, "Observation.status", `required element "status" is missing`},
			},
		},
		{
			name: "RequiredPrimitiveGivenByExtensionOnly",
			typ:  "Observation",
			json: `{"resourceType":"Observation","_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},"code":{"text":"x"}}`,
		},
		{
			name: "MissingChoice",
			typ:  "MedicationRequest",
			json: `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}}`,
			want: []wantIssue{
				{fhir.IssueRequired, "MedicationRequest.medication[x]", `required element "medication[x]" is missing (as one of medicationCodeableConcept, medicationReference)`},
			},
		},
		{
			name: "InvalidInNestedArray",
			typ:  "Patient",
			json: `{"resourceType":"Patient","name":[{"family":"Chalmers"},{"given":["Peter",7]}],"contact":[{"name":{"bogus":true}}]}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Patient.contact[0].name.bogus", `unknown element "bogus"`},
				{fhir.IssueStructure, "Patient.name[1].given[1]", `"given" must be a JSON string (FHIR string), not a number`},
			},
		},
		{
			name: "MissingInBackbone",
			typ:  "Patient",
			json: `{"resourceType":"Patient","link":[{"type":"seealso"}],"communication":[{"preferred":true}]}`,
			want: []wantIssue{
				{fhir.IssueRequired, "Patient.communication[0].language", `required element "language" is missing`},
				{fhir.IssueRequired, "Patient.link[0].other", `required element "other" is missing`},
			},
		},
		{
			name: "InvalidContainedResource",
			typ:  "Patient",
			json: `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o1","code":{"text":"x"},"valueFoo":1},{"resourceType":"Organization","id":"o2","name":""}]}`,
			want: []wantIssue{
				{fhir.IssueRequired, "Patient.contained[0].status", `required element "status" is missing`},
				{fhir.IssueStructure, "Patient.contained[0].valueFoo", `unknown element "valueFoo"`},
				{fhir.IssueValue, "Patient.contained[1].name", `"name" must match the FHIR string format`},
			},
		},
		{
			name: "ContainedNotAResource",
			typ:  "Patient",
			json: `{"resourceType":"Patient","contained":[{"resourceType":"Nope"},{"id":"x"},"text"]}`,
			want: []wantIssue{
				{fhir.IssueValue, "Patient.contained[0].resourceType", `unknown resource type "Nope"`},
				{fhir.IssueRequired, "Patient.contained[1].resourceType", `required element "resourceType" is missing`},
				{fhir.IssueStructure, "Patient.contained[2]", `"contained" must be a resource (a JSON object with a resourceType), not a string`},
			},
		},
		{
			name: "BundleEntries",
			typ:  "Bundle",
			json: `{"resourceType":"Bundle","type":"transaction","entry":[
				{"resource":{"resourceType":"Patient","name":"Peter"},"request":{"method":"POST","url":"Patient"}},
				{"request":{"method":"PUT"}},
				{"resource":{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"m"}}]}}]}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Bundle.entry[0].resource.name", `"name" must be an array, not a string`},
				{fhir.IssueRequired, "Bundle.entry[1].request.url", `required element "url" is missing`},
				{fhir.IssueValue, "Bundle.entry[2].resource.entry[0].resource.gender", `"gender" must be one of "male", "female", "other", "unknown"; got "m"`},
			},
		},
		{
			name: "ComplexGivenAsString",
			typ:  "Patient",
			json: `{"resourceType":"Patient","maritalStatus":"M","contact":["x"]}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Patient.contact[0]", `"contact" must be an object (FHIR Patient.Contact), not a string`},
				{fhir.IssueStructure, "Patient.maritalStatus", `"maritalStatus" must be an object (FHIR CodeableConcept), not a string`},
			},
		},
		{
			name: "Integers",
			typ:  "Patient",
			json: `{"resourceType":"Patient","multipleBirthInteger":1.5,"photo":[{"size":-1}]}`,
			want: []wantIssue{
				{fhir.IssueValue, "Patient.multipleBirthInteger", `"multipleBirthInteger" must be a whole number (FHIR integer); got 1.5`},
				{fhir.IssueValue, "Patient.photo[0].size", `"size" must be at least 0 (FHIR unsignedInt); got -1`},
			},
		},
		{
			name: "ResourceTypeMismatch",
			typ:  "Observation",
			json: `{"resourceType":"Patient","status":"final","code":{"text":"x"}}`,
			want: []wantIssue{
				{fhir.IssueValue, "Observation.resourceType", `"resourceType" must be "Observation"; got "Patient"`},
			},
		},
		{
			name: "NullsAlignPrimitiveArrays",
			typ:  "Patient",
			json: `{"resourceType":"Patient","name":[{"given":["Peter",null],"_given":[null,{"extension":[{"url":"http://example.org/x","valueString":"y"}]}]}]}`,
		},
		{
			name: "NullOutsideArrays",
			typ:  "Patient",
			json: `{"resourceType":"Patient","birthDate":null}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Patient.birthDate", `"birthDate" must be a JSON string (FHIR date), not null`},
			},
		},
		{
			name: "NarrativeDiv",
			typ:  "Patient",
			json: `{"resourceType":"Patient","text":{"status":"generated","div":{"p":"x"}}}`,
			want: []wantIssue{
				{fhir.IssueStructure, "Patient.text.div", `"div" must be a JSON string (FHIR xhtml), not an object`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(context.Background(), tt.typ, mustDecode(t, tt.json))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error; issues:\n%s", err, issuesText(err))
				}
				return
			}
			fe := fhir.AsError(err)
			if fe == nil {
				t.Fatalf("got %v, want a *fhir.Error", err)
			}
			if got := fe.HTTPStatus(); got != http.StatusUnprocessableEntity {
				t.Errorf("got status %d, want 422", got)
			}
			for i, w := range tt.want {
				if i >= len(fe.Issues) || !w.matches(fe.Issues[i]) {
					t.Errorf("issue %d: want %v; got issues:\n%s", i, w, issuesText(err))
					break
				}
			}
			if len(fe.Issues) != len(tt.want) {
				t.Errorf("got %d issues, want %d:\n%s", len(fe.Issues), len(tt.want), issuesText(err))
			}
			for _, is := range fe.Issues {
				if is.Severity != fhir.SeverityError {
					t.Errorf("got severity %s, want error", is.Severity)
				}
			}
		})
	}
}

func TestValidateCapsIssues(t *testing.T) {
	v := testValidator(t)
	res := map[string]any{"resourceType": "Patient"}
	for i := range 150 {
		res[fmt.Sprintf("bad%03d", i)] = true
	}
	fe := fhir.AsError(v.Validate(context.Background(), "Patient", res))
	if fe == nil {
		t.Fatal("got no error")
	}
	if len(fe.Issues) != maxIssues+1 {
		t.Fatalf("got %d issues, want %d", len(fe.Issues), maxIssues+1)
	}
	if got := fe.Issues[0].Expression[0]; got != "Patient.bad000" {
		t.Errorf("first issue at %s, want Patient.bad000", got)
	}
	last := fe.Issues[maxIssues]
	if last.Severity != fhir.SeverityInformation || !strings.Contains(last.Diagnostics, "50 more issues") {
		t.Errorf("last issue: got %s %q, want information about 50 more issues", last.Severity, last.Diagnostics)
	}
}

func TestValidateUnknownType(t *testing.T) {
	v := testValidator(t)
	err := v.Validate(context.Background(), "Foo", map[string]any{"resourceType": "Foo"})
	if fhir.ErrorStatus(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), `unknown resource type "Foo"`) {
		t.Errorf("got %v (status %d), want 422 unknown resource type", err, fhir.ErrorStatus(err))
	}
}

// TestValidateFloat64 checks values decoded without UseNumber.
func TestValidateFloat64(t *testing.T) {
	v := testValidator(t)
	var res map[string]any
	if err := json.Unmarshal([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.5},"component":[{"code":{"text":"y"},"valueInteger":3}]}`), &res); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(context.Background(), "Observation", res); err != nil {
		t.Errorf("got %v, want no error", err)
	}
	res["component"].([]any)[0].(map[string]any)["valueInteger"] = 3.5
	if err := v.Validate(context.Background(), "Observation", res); !hasIssue(err, wantIssue{fhir.IssueValue, "Observation.component[0].valueInteger", "whole number"}) {
		t.Errorf("got %v, want a whole-number issue", err)
	}
}

func TestValidateLeavesInputAlone(t *testing.T) {
	v := testValidator(t)
	res := mustDecode(t, `{"resourceType":"Patient","foo":1,"name":[{"given":["a",2]}],"contained":[{"resourceType":"Observation"}]}`)
	before := clone(res)
	_ = v.Validate(context.Background(), "Patient", res)
	if !reflect.DeepEqual(res, before) {
		t.Errorf("Validate changed its input")
	}
}

func TestValidateConcurrently(t *testing.T) {
	v := testValidator(t)
	good := mustDecode(t, `{"resourceType":"Patient","name":[{"family":"Chalmers"}],"birthDate":"1974-12-25"}`)
	bad := mustDecode(t, `{"resourceType":"Patient","birthDate":"1974-12-32"}`)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if err := v.Validate(context.Background(), "Patient", good); err != nil {
					errs <- fmt.Errorf("goroutine %d: valid resource: %v", i, err)
					return
				}
				if err := v.Validate(context.Background(), "Patient", bad); err == nil {
					errs <- fmt.Errorf("goroutine %d: invalid resource passed", i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkValidatePatient(b *testing.B) {
	v := testValidator(b)
	p := officialExample(b, "Patient-example")
	ctx := context.Background()
	for b.Loop() {
		if err := v.Validate(ctx, "Patient", p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateBundle(b *testing.B) {
	v := testValidator(b)
	bundle := officialExample(b, "Bundle-b248b1b2-1686-4b94-9936-37d7a5f94b51")
	ctx := context.Background()
	for b.Loop() {
		if err := v.Validate(ctx, "Bundle", bundle); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewValidator(b *testing.B) {
	for b.Loop() {
		if _, err := NewValidator(); err != nil {
			b.Fatal(err)
		}
	}
}
