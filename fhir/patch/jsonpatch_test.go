package patch

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestJSONPatchSuite runs the FHIR test cases for JSON Patch (the RFC 6902
// examples).
func TestJSONPatchSuite(t *testing.T) {
	var cases []struct {
		Comment  string          `json:"comment"`
		Doc      json.RawMessage `json:"doc"`
		Patch    json.RawMessage `json:"patch"`
		Expected json.RawMessage `json:"expected"`
		Error    string          `json:"error"`
		Disabled bool            `json:"disabled"`
	}
	if err := json.Unmarshal(readSuite(t, "json-patch-tests.json"), &cases); err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, c := range cases {
		t.Run(c.Comment, func(t *testing.T) {
			if c.Disabled {
				t.Skip("disabled in the suite")
			}
			got, err := JSONPatch(c.Doc, c.Patch)
			if c.Error != "" {
				if err == nil {
					t.Fatalf("got %s, want an error (%s)", got, c.Error)
				}
				wantStatus(t, err, http.StatusUnprocessableEntity)
				passed++
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if !sameJSON(t, got, c.Expected) {
				t.Fatalf("got %s, want %s", got, c.Expected)
			}
			passed++
		})
	}
	t.Logf("JSON Patch suite: %d of %d cases pass", passed, len(cases))
}

func TestJSONPatch(t *testing.T) {
	const patient = `{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Chalmers","given":["Peter","James"]}],"weight":1.50,"big":1e400,"extension":[]}`
	tests := []struct {
		name, doc, patch, want string
	}{
		{"Order/Replace keeps the member's place", patient,
			`[{"op":"replace","path":"/active","value":false}]`,
			`{"resourceType":"Patient","id":"p1","active":false,"name":[{"family":"Chalmers","given":["Peter","James"]}],"weight":1.50,"big":1e400,"extension":[]}`},
		{"Order/Add appends new members", patient,
			`[{"op":"add","path":"/gender","value":"male"},{"op":"add","path":"/name/0/text","value":"Peter Chalmers"}]`,
			`{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Chalmers","given":["Peter","James"],"text":"Peter Chalmers"}],"weight":1.50,"big":1e400,"extension":[],"gender":"male"}`},
		{"Order/Add to an existing member replaces it in place", patient,
			`[{"op":"add","path":"/id","value":"p2"}]`,
			`{"resourceType":"Patient","id":"p2","active":true,"name":[{"family":"Chalmers","given":["Peter","James"]}],"weight":1.50,"big":1e400,"extension":[]}`},
		{"Order/Remove", patient,
			`[{"op":"remove","path":"/active"}]`,
			`{"resourceType":"Patient","id":"p1","name":[{"family":"Chalmers","given":["Peter","James"]}],"weight":1.50,"big":1e400,"extension":[]}`},
		{"Decimal/Values keep their literal", `{"a":1.50,"b":[0.10,1E+2]}`,
			`[{"op":"add","path":"/c","value":2.000},{"op":"copy","from":"/a","path":"/d"},{"op":"test","path":"/b/1","value":100}]`,
			`{"a":1.50,"b":[0.10,1E+2],"c":2.000,"d":1.50}`},
		{"Decimal/Test compares numbers by value", `{"a":1.50}`,
			`[{"op":"test","path":"/a","value":1.5},{"op":"test","path":"/a","value":15e-1}]`,
			`{"a":1.50}`},
		{"Pointer/Escapes", `{"a/b":{"m~n":1}}`,
			`[{"op":"replace","path":"/a~1b/m~0n","value":2}]`,
			`{"a/b":{"m~n":2}}`},
		{"Pointer/Empty key", `{"":1}`,
			`[{"op":"replace","path":"/","value":2}]`,
			`{"":2}`},
		{"Array/Append", `{"a":[1]}`,
			`[{"op":"add","path":"/a/-","value":2},{"op":"add","path":"/a/0","value":0},{"op":"add","path":"/a/3","value":3}]`,
			`{"a":[0,1,2,3]}`},
		{"Array/Move within", `{"a":[1,2,3]}`,
			`[{"op":"move","from":"/a/0","path":"/a/-"}]`,
			`{"a":[2,3,1]}`},
		{"Move/Onto itself", `{"a":{"b":1}}`,
			`[{"op":"move","from":"/a","path":"/a"}]`,
			`{"a":{"b":1}}`},
		{"Copy/Is deep", `{"a":{"b":1}}`,
			`[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]`,
			`{"a":{"b":1},"c":{"b":2}}`},
		{"Test/Objects ignore order", `{"a":{"x":1,"y":[true,null,"s"]}}`,
			`[{"op":"test","path":"/a","value":{"y":[true,null,"s"],"x":1.0}}]`,
			`{"a":{"x":1,"y":[true,null,"s"]}}`},
		{"Replace/Whole document", `{"a":1}`,
			`[{"op":"replace","path":"","value":{"b":2}}]`,
			`{"b":2}`},
		{"Strings/Are written unescaped", `{"div":"<div>a&amp;b</div>"}`,
			`[{"op":"add","path":"/t","value":"tab\tquote\"\u2028é"}]`,
			`{"div":"<div>a&amp;b</div>","t":"tab\tquote\"\u2028é"}`},
		{"Empty patch", patient, `[]`, patient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := JSONPatch([]byte(tt.doc), []byte(tt.patch))
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestJSONPatchDoesNotChangeItsInput(t *testing.T) {
	doc := []byte(`{"a":[1,2],"b":{"c":1}}`)
	patch := []byte(`[{"op":"remove","path":"/a/0"},{"op":"add","path":"/b/d","value":[3]},{"op":"add","path":"/b/d/-","value":4}]`)
	before, pbefore := string(doc), string(patch)
	got, err := JSONPatch(doc, patch)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[2],"b":{"c":1,"d":[3,4]}}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if string(doc) != before || string(patch) != pbefore {
		t.Error("the inputs changed")
	}
}

func TestJSONPatchErrors(t *testing.T) {
	const doc = `{"resourceType":"Patient","name":[{"family":"Chalmers"}],"active":true}`
	tests := []struct {
		name, doc, patch string
		status           int
		msg              string // a part of the message
	}{
		// A malformed patch document: 400.
		{"Malformed/Not JSON", doc, `[{"op":`, 400, "reading the JSON Patch document"},
		{"Malformed/Trailing data", doc, `[] []`, 400, "after the top-level value"},
		{"Malformed/Not an array", doc, `{"op":"add"}`, 400, "array of operations"},
		{"Malformed/Operation not an object", doc, `[1]`, 400, "patch operation 0: not a JSON object"},
		{"Malformed/No op", doc, `[{"path":"/a"}]`, 400, `patch operation 0: no "op" member`},
		{"Malformed/Op not a string", doc, `[{"op":1,"path":"/a"}]`, 400, `"op" is not a string`},
		{"Malformed/Unknown op", doc, `[{"op":"test","path":"/active","value":true},{"op":"merge","path":"/a"}]`, 400, `patch operation 1 (merge /a): unknown op "merge"`},
		{"Malformed/No path", doc, `[{"op":"remove"}]`, 400, `patch operation 0 (remove): no "path" member`},
		{"Malformed/No value", doc, `[{"op":"add","path":"/a"}]`, 400, "patch operation 0 (add /a): no value"},
		{"Malformed/No from", doc, `[{"op":"copy","path":"/a"}]`, 400, `patch operation 0 (copy /a): no "from" member`},
		{"Malformed/Pointer without slash", doc, `[{"op":"remove","path":"active"}]`, 400, "does not start with /"},
		{"Malformed/Bad escape", doc, `[{"op":"remove","path":"/a~2"}]`, 400, "~ not followed by 0 or 1"},
		{"Malformed/Bad from", doc, `[{"op":"move","from":"x","path":"/a"}]`, 400, "from: JSON Pointer"},
		{"Malformed/Duplicate member", doc, `[{"op":"add","op":"remove","path":"/a"}]`, 400, "appears twice"},
		// A patch that cannot be applied: 422.
		{"Apply/Missing path", doc, `[{"op":"test","path":"/active","value":true},{"op":"replace","path":"/name/0/given","value":"x"}]`, 422, "patch operation 1 (replace /name/0/given): path does not exist"},
		{"Apply/Missing parent", doc, `[{"op":"add","path":"/a/b","value":1}]`, 422, "patch operation 0 (add /a/b): path does not exist"},
		{"Apply/Remove missing", doc, `[{"op":"remove","path":"/gender"}]`, 422, "patch operation 0 (remove /gender): path does not exist"},
		{"Apply/Index out of range", doc, `[{"op":"add","path":"/name/2","value":{}}]`, 422, "array index 2 is out of range (length 1)"},
		{"Apply/Index past the end", doc, `[{"op":"remove","path":"/name/1"}]`, 422, "out of range"},
		{"Apply/Dash on remove", doc, `[{"op":"remove","path":"/name/-"}]`, 422, "path does not exist"},
		{"Apply/Leading zero", doc, `[{"op":"remove","path":"/name/00"}]`, 422, `"00" is not an array index`},
		{"Apply/Into a primitive", doc, `[{"op":"add","path":"/active/x","value":1}]`, 422, "path does not exist"},
		{"Apply/Failed test", doc, `[{"op":"test","path":"/name/0/family","value":"Smith"}]`, 422, `patch operation 0 (test /name/0/family): test failed: the value is "Chalmers", not "Smith"`},
		{"Apply/Number is not a string", `{"a":10}`, `[{"op":"test","path":"/a","value":"10"}]`, 422, "test failed"},
		{"Apply/Move into itself", doc, `[{"op":"move","from":"/name","path":"/name/0/x"}]`, 422, "patch operation 0 (move /name/0/x from /name): cannot move a value into one of its own children"},
		{"Apply/Move from missing", doc, `[{"op":"move","from":"/x","path":"/y"}]`, 422, "from: path does not exist"},
		{"Apply/Remove the document", doc, `[{"op":"remove","path":""}]`, 422, "cannot remove the whole document"},
		{"Apply/Result not an object", doc, `[{"op":"replace","path":"","value":[1]}]`, 422, "not a JSON object"},
		// A resource that is not JSON: 400.
		{"Resource/Not JSON", `{`, `[]`, 400, "reading the resource"},
		{"Resource/Not an object", `[1]`, `[]`, 400, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := JSONPatch([]byte(tt.doc), []byte(tt.patch))
			if err == nil {
				t.Fatalf("got %s, want an error", got)
			}
			wantStatus(t, err, tt.status)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got message %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

func TestNumbersEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1", "1", true},
		{"1.50", "1.5", true},
		{"100", "1e2", true},
		{"100", "1E+2", true},
		{"0.01", "1e-2", true},
		{"0", "-0.0", true},
		{"0", "0e10", true},
		{"-1", "1", false},
		{"1.5", "1.05", false},
		{"1e400", "1e400", true},
		{"1e400", "10e399", true},
		{"1e400", "1e401", false},
		{"1e99999999999999999999", "1e99999999999999999998", false},
	}
	for _, tt := range tests {
		if got := numbersEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("numbersEqual(%s, %s): got %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestJSONPatchCopyCannotExplode(t *testing.T) {
	var ops []string
	for range 64 {
		ops = append(ops, `{"op":"copy","from":"/a","path":"/a/-"}`)
	}
	_, err := JSONPatch([]byte(`{"a":[1]}`), []byte("["+strings.Join(ops, ",")+"]"))
	fe := wantStatus(t, err, http.StatusUnprocessableEntity)
	if !strings.Contains(fe.Error(), "would be too large") {
		t.Errorf("got %v, want a too-large error", fe)
	}
	// A copy of a large part, once, is fine.
	big := `{"a":[` + strings.Repeat(`{"x":1},`, 5000) + `{"x":1}]}`
	if _, err := JSONPatch([]byte(big), []byte(`[{"op":"copy","from":"/a","path":"/b"}]`)); err != nil {
		t.Errorf("copying a large part: %v", err)
	}
}
