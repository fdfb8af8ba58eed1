package main

import (
	"slices"
	"testing"
	"time"
)

func TestSubMix(t *testing.T) {
	specs := subMix(1000, []string{"p1", "p2"}, []string{"c1", "c2", "c3"})
	count := map[subKind]int{}
	for _, s := range specs {
		count[s.kind]++
	}
	if count[subPerPatient] != 700 || count[subPerCode] != 250 || count[subPerType] != 50 {
		t.Errorf("mix %v, want 700 per patient, 250 per code, 50 per type", count)
	}
	for i, want := range map[int]string{0: "Observation?patient=Patient/p1", 700: "Observation?code=http://loinc.org|c1", 950: "Encounter?", 951: "Patient?"} {
		if got := specs[i].criteria(); got != want {
			t.Errorf("specs[%d].criteria() = %q, want %q", i, got, want)
		}
	}
}

func TestSubIndexMatching(t *testing.T) {
	// 0, 1: patient p1; 2: patient p2; 3: code c1; 4: Encounter; 5: Patient.
	x := newSubIndex([]subSpec{
		{subPerPatient, "p1"}, {subPerPatient, "p1"}, {subPerPatient, "p2"},
		{subPerCode, "c1"}, {subPerType, "Encounter"}, {subPerType, "Patient"},
	})
	tests := []struct {
		name string
		w    subWrite
		want []int
	}{
		{"Observation/PatientAndCode", subWrite{"Observation", "p1", "c1"}, []int{0, 1, 3}},
		{"Observation/PatientOnly", subWrite{"Observation", "p2", "c9"}, []int{2}},
		{"Observation/None", subWrite{"Observation", "p3", "c9"}, nil},
		{"Encounter/NotByPatient", subWrite{"Encounter", "p1", ""}, []int{4}},
		{"Patient", subWrite{"Patient", "", ""}, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := x.matching(tt.w); !slices.Equal(got, tt.want) {
				t.Errorf("matching(%+v) = %v, want %v", tt.w, got, tt.want)
			}
		})
	}
}

func TestSummarizeStep(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	writes := []written{
		{key: "Observation/a", subs: []int{0, 3}, sched: at(0), sent: at(0), created: at(10)},
		{key: "Patient/b", subs: []int{5}, sched: at(100), sent: at(100), created: at(110)},
		{key: "", subs: []int{0}, sched: at(200), sent: at(200)}, // failed create: nothing expected
	}
	got := []delivery{
		{sub: 0, key: "Observation/a", at: at(30)},
		{sub: 3, key: "Observation/a", at: at(50)},
		{sub: 3, key: "Observation/a", at: at(60)}, // duplicate
		{sub: 4, key: "Observation/a", at: at(70)}, // unexpected
		{sub: 1, key: "Observation/other-step", at: at(80)},
	}
	var run subRun
	summarizeStep(writes, got, &run)
	if run.Expected != 3 || run.Received != 2 || run.Missing != 1 || run.Duplicates != 1 || run.Unexpected != 1 {
		t.Errorf("expected %d, received %d, missing %d, duplicates %d, unexpected %d; want 3, 2, 1, 1, 1",
			run.Expected, run.Received, run.Missing, run.Duplicates, run.Unexpected)
	}
	if run.P50 != latency(20*time.Millisecond) || run.P99 != latency(40*time.Millisecond) {
		t.Errorf("p50 %s, p99 %s; want 20ms, 40ms", run.P50, run.P99)
	}
	if run.Drained {
		t.Error("drained with a notification missing")
	}
	got = append(got, delivery{sub: 5, key: "Patient/b", at: at(2110)})
	run = subRun{}
	summarizeStep(writes, got, &run)
	if !run.Drained || run.DrainSeconds != 2 {
		t.Errorf("drained %v after %vs, want true after 2s", run.Drained, run.DrainSeconds)
	}
}

func TestKeyFromLocation(t *testing.T) {
	tests := []struct {
		name, typ, loc, want string
		wantErr              bool
	}{
		{"Absolute", "Observation", "http://h/fhir/Observation/o-1/_history/1", "Observation/o-1", false},
		{"Relative", "Encounter", "Encounter/e1/_history/1", "Encounter/e1", false},
		{"OtherType", "Observation", "http://h/fhir/Patient/p1", "", true},
		{"NoID", "Patient", "http://h/fhir/Patient/", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keyFromLocation(tt.typ, tt.loc)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("keyFromLocation(%q, %q) = %q, %v; want %q, error %v", tt.typ, tt.loc, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSubTarget(t *testing.T) {
	sr := &subResult{Subscriptions: 1000, Main: subRun{Rate: 500, AchievedRate: 499, Expected: 10, Received: 10, P99: latency(150 * time.Millisecond)}}
	if got := sr.target().Status; got != statusPass {
		t.Errorf("p99 150ms, all delivered: %s, want %s", got, statusPass)
	}
	sr.Main.P99 = latency(300 * time.Millisecond)
	if got := sr.target().Status; got != statusMiss {
		t.Errorf("p99 300ms: %s, want %s", got, statusMiss)
	}
	sr.Main.Rate = 250
	if got := sr.target().Status; got != statusSkip {
		t.Errorf("at 250/s: %s, want %s", got, statusSkip)
	}
}
