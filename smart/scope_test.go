package smart

import (
	"net/url"
	"reflect"
	"testing"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		ok      bool
		context string
		typ     string
		perms   string
		v1      bool
		filter  url.Values
	}{
		// SMART v1
		{"patient/*.read", true, ContextPatient, "*", "rs", true, nil},
		{"user/Observation.write", true, ContextUser, "Observation", "cud", true, nil},
		{"system/Patient.*", true, ContextSystem, "Patient", "cruds", true, nil},
		// SMART v2
		{"patient/Observation.rs", true, ContextPatient, "Observation", "rs", false, nil},
		{"user/*.cruds", true, ContextUser, "*", "cruds", false, nil},
		{"system/Encounter.c", true, ContextSystem, "Encounter", "c", false, nil},
		{"patient/Condition.ud", true, ContextPatient, "Condition", "ud", false, nil},
		// Granular
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true, ContextPatient, "Observation", "rs", false,
			url.Values{"category": {"http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}}},
		{"user/Observation.rs?category=laboratory&status=final", true, ContextUser, "Observation", "rs", false,
			url.Values{"category": {"laboratory"}, "status": {"final"}}},
		// Malformed
		{"patient/Observation.sr", false, "", "", "", false, nil},  // out of order
		{"patient/Observation.rrs", false, "", "", "", false, nil}, // repeated
		{"patient/Observation.rx", false, "", "", "", false, nil},  // unknown letter
		{"patient/Observation.", false, "", "", "", false, nil},    // no permissions
		{"patient/.rs", false, "", "", "", false, nil},             // no type
		{"patient/observation.rs", false, "", "", "", false, nil},  // not a type name
		{"patient/Obs-ervation.rs", false, "", "", "", false, nil},
		{"group/Observation.rs", false, "", "", "", false, nil},                // unknown context
		{"patient/Observation", false, "", "", "", false, nil},                 // no permission part
		{"patient/Observation.read?category=x", false, "", "", "", false, nil}, // v1 has no filters
		{"patient/Observation.rs?", false, "", "", "", false, nil},             // empty filter
		{"patient/Observation.rs?a=%zz", false, "", "", "", false, nil},        // bad query
		// Not resource scopes
		{"openid", false, "", "", "", false, nil},
		{"launch/patient", false, "", "", "", false, nil},
		{"offline_access", false, "", "", "", false, nil},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			s, ok := ParseScope(tc.raw)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tc.ok, s)
			}
			if !ok {
				return
			}
			if s.Raw != tc.raw || s.Context != tc.context || s.Type != tc.typ || s.Perms.String() != tc.perms || s.V1 != tc.v1 {
				t.Errorf("got %+v (perms %s), want %s %s %s v1=%v", s, s.Perms, tc.context, tc.typ, tc.perms, tc.v1)
			}
			if !reflect.DeepEqual(s.Filter, tc.filter) {
				t.Errorf("filter %v, want %v", s.Filter, tc.filter)
			}
		})
	}
}

func TestPerms(t *testing.T) {
	if got := PermAll.String(); got != "cruds" {
		t.Errorf("PermAll = %q, want cruds", got)
	}
	if got := (PermRead | PermSearch).String(); got != "rs" {
		t.Errorf("rs = %q", got)
	}
	if !PermAll.Has(PermCreate|PermDelete) || (PermRead | PermSearch).Has(PermRead|PermUpdate) {
		t.Error("Has is wrong")
	}
}

func TestParseGrant(t *testing.T) {
	g, bad := ParseGrant("openid fhirUser launch/patient patient/*.rs patient/Observation.xyz offline_access user/Encounter.read system/")
	if want := []string{"patient/Observation.xyz", "system/"}; !reflect.DeepEqual(bad, want) {
		t.Errorf("bad = %v, want %v", bad, want)
	}
	if len(g.Scopes) != 2 || g.Scopes[0].Raw != "patient/*.rs" || g.Scopes[1].Raw != "user/Encounter.read" {
		t.Errorf("scopes = %+v", g.Scopes)
	}
	if want := []string{"openid", "fhirUser", "launch/patient", "offline_access"}; !reflect.DeepEqual(g.Other, want) {
		t.Errorf("other = %v, want %v", g.Other, want)
	}
	if !g.HasOther("offline_access") || g.HasOther("patient/*.rs") {
		t.Error("HasOther is wrong")
	}
	if got, want := g.String(), "patient/*.rs user/Encounter.read openid fhirUser launch/patient offline_access"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"patient/*.read", "user/Observation.rs?category=a|b", "system/Patient.cruds", "openid"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, ok := ParseScope(raw)
		if !ok {
			return
		}
		if s.Perms == 0 || s.Type == "" || (s.V1 && s.Filter != nil) {
			t.Errorf("%q parsed to %+v", raw, s)
		}
		if s2, ok2 := ParseScope(s.Raw); !ok2 || !reflect.DeepEqual(s, s2) {
			t.Errorf("%q does not parse the same again", raw)
		}
	})
}
