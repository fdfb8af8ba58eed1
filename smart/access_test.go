package smart

import (
	"context"
	"fmt"
	"testing"
)

func grant(t *testing.T, scopes string) Grant {
	t.Helper()
	g, bad := ParseGrant(scopes)
	if len(bad) > 0 {
		t.Fatalf("bad scopes %v", bad)
	}
	return g
}

func TestRules(t *testing.T) {
	lab := "patient/Observation.rs?category=laboratory"
	for _, tc := range []struct {
		name, scopes, patient, typ string
		perm                       Perms
		want                       string // the rules, written with Rule.String
	}{
		{"PatientV1", "patient/*.read", "p1", "Observation", PermRead, "[compartment Patient/p1 (patient/*.read)]"},
		{"PatientV1Search", "patient/*.read", "p1", "Observation", PermSearch, "[compartment Patient/p1 (patient/*.read)]"},
		{"PatientV1NoWrite", "patient/*.read", "p1", "Observation", PermCreate, "[]"},
		{"PatientV2", "patient/Observation.rs", "p1", "Observation", PermRead, "[compartment Patient/p1 (patient/Observation.rs)]"},
		{"PatientV2OtherType", "patient/Observation.rs", "p1", "Condition", PermRead, "[]"},
		{"PatientNoLaunch", "patient/*.rs", "", "Observation", PermRead, "[]"},
		{"Granular", lab, "p1", "Observation", PermSearch, "[compartment Patient/p1 and category=laboratory (" + lab + ")]"},
		{"GranularNoPerm", lab, "p1", "Observation", PermUpdate, "[]"},
		{"GranularOr", lab + " patient/Observation.rs?category=vital-signs", "p1", "Observation", PermRead,
			"[compartment Patient/p1 and category=laboratory (" + lab + ") compartment Patient/p1 and category=vital-signs (patient/Observation.rs?category=vital-signs)]"},
		{"GranularThenWhole", lab + " patient/Observation.rs", "p1", "Observation", PermRead,
			"[compartment Patient/p1 and category=laboratory (" + lab + ") compartment Patient/p1 (patient/Observation.rs)]"},
		{"UserWhole", "user/*.cruds", "", "Observation", PermDelete, "[all]"},
		{"UserWins", lab + " user/Observation.rs", "p1", "Observation", PermRead, "[all]"},
		{"UserFiltered", "user/Observation.rs?status=final", "", "Observation", PermRead, "[status=final (user/Observation.rs?status=final)]"},
		{"UserReadOnly", "user/*.rs", "", "Patient", PermUpdate, "[]"},
		{"SystemRS", "system/*.rs", "", "Encounter", PermSearch, "[all]"},
		{"SystemIgnoresPatient", "system/*.rs", "p1", "Encounter", PermRead, "[all]"},
		{"V1Write", "user/Observation.write", "", "Observation", PermUpdate, "[all]"},
		{"V1WriteNoRead", "user/Observation.write", "", "Observation", PermRead, "[]"},
		{"WildcardFilterIgnored", "user/*.rs?status=final", "", "Observation", PermRead, "[]"},
		{"None", "openid fhirUser", "p1", "Observation", PermRead, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Access{Grant: grant(t, tc.scopes), Patient: tc.patient}
			rules := a.Rules(tc.typ, tc.perm)
			var got []string
			for _, r := range rules {
				got = append(got, r.String())
			}
			if fmt.Sprintf("%v", got) != tc.want && !(len(got) == 0 && tc.want == "[]") {
				t.Errorf("Rules(%s, %s) = %v, want %s", tc.typ, tc.perm, got, tc.want)
			}
			if a.Allows(tc.typ, tc.perm) != (len(rules) > 0) {
				t.Error("Allows disagrees with Rules")
			}
			if a.Unrestricted(tc.typ, tc.perm) != (tc.want == "[all]") {
				t.Errorf("Unrestricted = %v", a.Unrestricted(tc.typ, tc.perm))
			}
		})
	}
}

func TestNilAccessAllowsEverything(t *testing.T) {
	var a *Access
	if !a.Unrestricted("Observation", PermAll) || !a.Allows("Patient", PermDelete) {
		t.Error("a nil Access must allow everything")
	}
}

func TestAccessContext(t *testing.T) {
	ctx := context.Background()
	if AccessFrom(ctx) != nil {
		t.Error("a bare context carries no Access")
	}
	a := &Access{ClientID: "c"}
	if got := AccessFrom(WithAccess(ctx, a)); got != a {
		t.Errorf("AccessFrom = %v, want %v", got, a)
	}
}
