package conformance

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// fullCapabilities uses every field.
func fullCapabilities() Capabilities {
	search := []SearchParamCapability{
		{Name: "_id", Definition: "http://hl7.org/fhir/SearchParameter/Resource-id", Type: "token"},
		{Name: "birthdate", Definition: "http://hl7.org/fhir/SearchParameter/individual-birthdate", Type: "date", Documentation: "The patient's date of birth"},
	}
	res := func(typ string) ResourceCapability {
		return ResourceCapability{
			Type:              typ,
			Documentation:     "All of " + typ,
			Interactions:      []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"},
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalCreate: true,
			ConditionalUpdate: true,
			ConditionalRead:   "full-support",
			ConditionalDelete: "single",
			ReferencePolicy:   []string{"literal", "logical"},
			SearchInclude:     []string{"*"},
			SearchRevInclude:  []string{"Provenance:target"},
			SearchParams:      search,
			Operations:        []OperationCapability{{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"}},
		}
	}
	return Capabilities{
		BaseURL:                   "https://fhir.example.org/r4",
		Name:                      "FHIRHub",
		Title:                     "FHIRHub capability statement",
		Publisher:                 "FHIRHub",
		Description:               "What this server does.",
		ImplementationDescription: "FHIRHub at example.org",
		SoftwareName:              "FHIRHub",
		SoftwareVersion:           "1.2.3",
		SoftwareReleaseDate:       time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Date:                      time.Date(2026, 11, 22, 10, 30, 15, 500, time.FixedZone("CET", 3600)),
		Formats:                   []string{"application/fhir+json", "json"},
		PatchFormats:              []string{"application/json-patch+json", "application/fhir+json"},
		Documentation:             "A FHIR R4 hub.",
		ConditionalNote:           "Conditional references are resolved inside transactions.",
		Security: &SecurityCapability{
			CORS:         true,
			Services:     []string{"SMART-on-FHIR"},
			Description:  "SMART App Launch 2.0 and Backend Services",
			AuthorizeURL: "https://fhir.example.org/auth/authorize",
			TokenURL:     "https://fhir.example.org/auth/token",
			RevokeURL:    "https://fhir.example.org/auth/revoke",
		},
		Resources:          []ResourceCapability{res("Patient"), res("Observation"), res("Consent")},
		SystemInteractions: []string{"transaction", "batch", "search-system", "history-system"},
		SystemSearchParams: search[:1],
		Operations:         []OperationCapability{{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export", Documentation: "Bulk Data export"}},
	}
}

func TestCapabilitiesJSON(t *testing.T) {
	v := testValidator(t)
	tests := []struct {
		name string
		caps Capabilities
	}{
		{"Full", fullCapabilities()},
		{"Minimal", Capabilities{BaseURL: "http://localhost:8080/fhir"}},
		{"ReadOnly", Capabilities{SoftwareName: "x", Resources: []ResourceCapability{{Type: "Patient", Interactions: []string{"read"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.caps.JSON()
			if err != nil {
				t.Fatalf("JSON: %v", err)
			}
			res := mustDecode(t, string(data))
			if err := v.Validate(context.Background(), "CapabilityStatement", res); err != nil {
				t.Fatalf("the statement is not valid: %v\n%s\n%s", err, issuesText(err), data)
			}
			for k, want := range map[string]any{"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1"} {
				if res[k] != want {
					t.Errorf("%s: got %v, want %v", k, res[k], want)
				}
			}
			rest := res["rest"].([]any)[0].(map[string]any)
			if rest["mode"] != "server" {
				t.Errorf("rest.mode: got %v, want server", rest["mode"])
			}
		})
	}
}

func TestCapabilitiesJSONContent(t *testing.T) {
	data, err := fullCapabilities().JSON()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Date           string
		Format         []string
		Software       struct{ Name, Version, ReleaseDate string }
		Implementation struct{ Description, URL string }
		Rest           []struct {
			Documentation string
			Security      struct {
				CORS      bool
				Extension []struct {
					URL       string
					Extension []struct{ URL, ValueURI string }
				}
			}
			Resource []struct {
				Type, Profile, Versioning, ConditionalDelete, ConditionalRead   string
				ReadHistory, UpdateCreate, ConditionalCreate, ConditionalUpdate bool
				Interaction                                                     []struct{ Code string }
				SearchParam                                                     []struct{ Name, Type, Definition, Documentation string }
			}
			Interaction []struct{ Code string }
			Operation   []struct{ Name, Definition string }
		}
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Date != "2026-11-22T09:30:15Z" {
		t.Errorf("date: got %s, want 2026-11-22T09:30:15Z", st.Date)
	}
	if st.Implementation.URL != "https://fhir.example.org/r4" || st.Software.Name != "FHIRHub" || st.Software.Version != "1.2.3" || st.Software.ReleaseDate != "2026-11-01T00:00:00Z" {
		t.Errorf("got implementation %+v and software %+v", st.Implementation, st.Software)
	}
	rest := st.Rest[0]
	if !strings.Contains(rest.Documentation, "A FHIR R4 hub.") || !strings.Contains(rest.Documentation, "Conditional references") {
		t.Errorf("rest.documentation: got %q, want the documentation and the conditional note", rest.Documentation)
	}
	var types []string
	for _, r := range rest.Resource {
		types = append(types, r.Type)
	}
	if strings.Join(types, ",") != "Consent,Observation,Patient" {
		t.Errorf("resources: got %v, want Consent, Observation, Patient (sorted)", types)
	}
	p := rest.Resource[2]
	if p.Profile != "http://hl7.org/fhir/StructureDefinition/Patient" || p.Versioning != "versioned-update" || p.ConditionalDelete != "single" ||
		!p.ReadHistory || !p.UpdateCreate || !p.ConditionalCreate || !p.ConditionalUpdate || len(p.Interaction) != 9 || len(p.SearchParam) != 2 {
		t.Errorf("Patient: got %+v", p)
	}
	if len(rest.Interaction) != 4 || rest.Interaction[0].Code != "transaction" {
		t.Errorf("system interactions: got %+v", rest.Interaction)
	}
	if len(rest.Operation) != 1 || rest.Operation[0].Name != "export" {
		t.Errorf("operations: got %+v", rest.Operation)
	}
	ext := rest.Security.Extension
	if len(ext) != 1 || ext[0].URL != oauthURIs || len(ext[0].Extension) != 3 || ext[0].Extension[1].URL != "token" || ext[0].Extension[1].ValueURI != "https://fhir.example.org/auth/token" {
		t.Errorf("security extension: got %+v", ext)
	}
}

func TestCapabilitiesDefaults(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Second)
	data, err := Capabilities{SoftwareName: "FHIRHub"}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Date           string
		Format         []string
		Implementation struct{ Description string }
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	date, err := time.Parse(time.RFC3339, st.Date)
	if err != nil || date.Before(before) {
		t.Errorf("date: got %s, want now", st.Date)
	}
	if strings.Join(st.Format, ",") != "application/fhir+json,json" {
		t.Errorf("format: got %v", st.Format)
	}
	if st.Implementation.Description != "FHIRHub FHIR server" {
		t.Errorf("implementation.description: got %q", st.Implementation.Description)
	}
}

func TestCapabilitiesJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		caps Capabilities
		want string
	}{
		{"UnknownType", Capabilities{Resources: []ResourceCapability{{Type: "Foo"}}}, `"Foo" is not a resource type`},
		{"Interaction", Capabilities{Resources: []ResourceCapability{{Type: "Patient", Interactions: []string{"search"}}}}, `Patient interaction "search"`},
		{"SystemInteraction", Capabilities{SystemInteractions: []string{"history"}}, `system interaction "history"`},
		{"Versioning", Capabilities{Resources: []ResourceCapability{{Type: "Patient", Versioning: "yes"}}}, `versioning "yes"`},
		{"ConditionalDelete", Capabilities{Resources: []ResourceCapability{{Type: "Patient", ConditionalDelete: "all"}}}, `conditional delete "all"`},
		{"SearchParamType", Capabilities{Resources: []ResourceCapability{{Type: "Patient", SearchParams: []SearchParamCapability{{Name: "x", Type: "text"}}}}}, `search parameter type "text"`},
		{"Operation", Capabilities{Operations: []OperationCapability{{Name: "export"}}}, `operation "export" needs a name and a definition`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.caps.JSON()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "conformance: ") {
				t.Errorf("got %v, want an error about %s", err, tt.want)
			}
		})
	}
}
