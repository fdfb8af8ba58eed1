package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func ms(xs ...int) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, x := range xs {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"Empty", nil, 50, 0},
		{"One/P50", ms(7), 50, 7 * time.Millisecond},
		{"One/P99", ms(7), 99, 7 * time.Millisecond},
		{"Two/P50", ms(1, 2), 50, 1 * time.Millisecond},
		{"Two/P99", ms(1, 2), 99, 2 * time.Millisecond},
		{"Three/P50", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"Four/P50", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"Hundred/P50", seq(100), 50, 50 * time.Millisecond},
		{"Hundred/P99", seq(100), 99, 99 * time.Millisecond},
		{"Hundred/P100", seq(100), 100, 100 * time.Millisecond},
		{"Thousand/P99", seq(1000), 99, 990 * time.Millisecond},
		{"Thousand-and-one/P99", seq(1001), 99, 991 * time.Millisecond},
		{"Ties", ms(1, 5, 5, 5, 9), 50, 5 * time.Millisecond},
		{"TinyP", seq(10), 0.01, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want float64
	}{
		{"Empty", nil, 0},
		{"One", []float64{4}, 4},
		{"Odd/Unsorted", []float64{9, 1, 5}, 5},
		{"Even/Mean", []float64{4, 1, 3, 2}, 2.5},
		{"Outlier", []float64{100, 101, 5000}, 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.xs)
			if got := median(tt.xs); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
			if !slices.Equal(in, tt.xs) {
				t.Errorf("median reordered its input: got %v, want %v", tt.xs, in)
			}
		})
	}
	t.Run("Latency", func(t *testing.T) {
		got := median([]latency{latency(3 * time.Millisecond), latency(1 * time.Millisecond)})
		if want := latency(2 * time.Millisecond); got != want {
			t.Errorf("median of 1ms and 3ms = %v, want %v", got, want)
		}
	})
}

func TestSummarize(t *testing.T) {
	results := []clientResult{{latencies: ms(4, 1)}, {latencies: ms(3, 2), errors: 1}}
	got := summarize(results, 2*time.Second)
	want := runResult{Requests: 4, Errors: 1, Seconds: 2, RPS: 2, P50: latency(2 * time.Millisecond), P99: latency(4 * time.Millisecond)}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
}

func TestIDFromLocation(t *testing.T) {
	tests := []struct {
		name, loc, want string
		wantErr         bool
	}{
		{"Absolute", "http://127.0.0.1:8080/fhir/Patient/abc-1/_history/1", "abc-1", false},
		{"Relative", "Patient/x.y/_history/3", "x.y", false},
		{"NoHistory", "http://h/fhir/Patient/p1", "p1", false},
		{"Empty", "", "", true},
		{"OtherType", "http://h/fhir/Observation/o1/_history/1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := idFromLocation(tt.loc)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("idFromLocation(%q) = %q, %v; want %q, error %v", tt.loc, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNewPatient(t *testing.T) {
	a, err := json.Marshal(newPatient(patientSource(1, 42)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(newPatient(patientSource(1, 42)))
	if string(a) != string(b) {
		t.Errorf("patient 42 differs between calls:\n%s\n%s", a, b)
	}
	t.Logf("patient: %d bytes", len(a))
	if n := len(a); n < 800 || n > 1400 {
		t.Errorf("patient is %d bytes, want about 1 KB: %s", n, a)
	}
}

func TestBytesIEC(t *testing.T) {
	tests := []struct {
		n    float64
		want string
	}{
		{0, "0.0 B"}, {1023, "1023.0 B"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}, {3 << 30, "3.00 GiB"},
	}
	for _, tt := range tests {
		if got := bytesIEC(tt.n); got != tt.want {
			t.Errorf("bytesIEC(%v) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestSyntheaTargets(t *testing.T) {
	sy := &syntheaResult{CountTotal: 54953, Searches: []scenarioResult{
		{Name: searchToken, MedianP50: latency(4 * time.Millisecond)},
		{Name: searchChain, MedianP50: latency(80 * time.Millisecond)},
		{Name: searchCount, MedianP50: latency(90 * time.Millisecond)},
	}}
	var got []string
	for _, tg := range sy.targets() {
		got = append(got, tg.Status)
	}
	if want := []string{statusPass, statusMiss, statusPass}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	sy.CountTotal = 5317
	if tg := sy.targets()[2]; tg.Status != statusSkip {
		t.Errorf("a count of %d matches: status %s, want %s", sy.CountTotal, tg.Status, statusSkip)
	}
}

func TestSyntheaSearches(t *testing.T) {
	d := &syntheaData{patients: []string{"p1"}, family: "Kuhlman"}
	rng := patientSource(1, 1)
	got := map[string]string{}
	for _, s := range d.searches() {
		got[s.name] = s.path(rng)
	}
	for name, want := range map[string]string{
		searchPatient: "/Observation?patient=p1&date=ge2015",
		searchChain:   "/Encounter?subject.name=Kuhlman",
		searchRevinc:  "/Patient?_id=p1&_revinclude=Observation:patient",
	} {
		if got[name] != want {
			t.Errorf("%s: path %q, want %q", name, got[name], want)
		}
	}
}
