package main

import (
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

// TestPairedRatio: the ratio is taken round by round, so a machine that
// slows down for a whole round (both sides) does not move it.
func TestPairedRatio(t *testing.T) {
	p := []float64{10, 5, 9}
	r := []float64{10, 5, 10}
	if got := pairedRatio(p, r); got != 1 {
		t.Errorf("pairedRatio = %v, want 1", got)
	}
	if got := pairedRatio(nil, r); !math.IsNaN(got) {
		t.Errorf("pairedRatio(nil) = %v, want NaN", got)
	}
}

func TestRowsVerdicts(t *testing.T) {
	same := placement{Name: "same", App: 0, Peer: 0}
	cross := placement{Name: "cross", App: 0, Peer: 1}
	free := placement{Name: "unpinned", App: -1, Peer: -1}
	ms := []metric{
		{id: "tp", name: "throughput", unit: "GB/s", higher: true, minRatio: 0.9},
		{id: "lat", name: "latency", unit: "µs", maxSame: 10, budget: 4.8},
		{id: "info", name: "informational", unit: "µs"},
	}
	res := newResults([]placement{same, cross, free})
	add := func(pl placement, pin, raw map[string]float64) {
		res.add(pl, "pinfold", pin)
		res.add(pl, "raw", raw)
	}
	// same: throughput 0.95x (pass), latency 11 us (miss: over 10 us).
	add(same, map[string]float64{"tp": 9.5, "lat": 11, "info": 3}, map[string]float64{"tp": 10, "lat": 5, "info": 1})
	// cross: throughput 0.8x (miss), latency raw+4 (pass: budget 4.8).
	add(cross, map[string]float64{"tp": 8, "lat": 54}, map[string]float64{"tp": 10, "lat": 50})
	// unpinned: informational whatever the values.
	add(free, map[string]float64{"tp": 1, "lat": 500}, map[string]float64{"tp": 10, "lat": 50})

	want := map[string]string{
		"same/tp": "pass", "same/lat": "miss", "same/info": "info",
		"cross/tp": "miss", "cross/lat": "pass",
		"unpinned/tp": "info", "unpinned/lat": "info",
	}
	got := map[string]string{}
	for _, x := range res.rows(ms) {
		got[x.Placement+"/"+x.Metric] = x.Result
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: result %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rows %v, want exactly %v", got, want)
	}
}

// TestRowsFailure: a test that failed in one placement says so there, with
// the rounds it had, and "not run" in the placements after it.
func TestRowsFailure(t *testing.T) {
	same := placement{Name: "same", App: 0, Peer: 0}
	cross := placement{Name: "cross", App: 0, Peer: 1}
	ms := []metric{{id: "open", name: "mq_open", unit: "µs"}}
	res := newResults([]placement{same, cross})
	res.add(same, "pinfold", map[string]float64{"open": 20})
	res.add(same, "raw", map[string]float64{"open": 2})
	res.fail(same, []string{"open"}, "the answer was lost")
	rows := res.rows(ms)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2: %+v", len(rows), rows)
	}
	if r := rows[0]; r.Result != "fail" || r.Pinfold != 20 || r.Ratio != 10 || !strings.Contains(r.Note, "lost") {
		t.Errorf("same: %+v, want fail with the earlier round's values and the reason", r)
	}
	if r := rows[1]; r.Result != "not run" {
		t.Errorf("cross: %+v, want not run", r)
	}
}

// TestJSONNaN: rows whose ratio has no value (0/0, no rounds) still encode.
func TestJSONNaN(t *testing.T) {
	var b strings.Builder
	rep := report{Rows: []row{{Metric: "x", Pinfold: jsonFloat(math.NaN()), Ratio: jsonFloat(math.Inf(1)), Raw: 2}}}
	if err := writeJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"ratio": null`) || !strings.Contains(b.String(), `"raw": 2`) {
		t.Errorf("got %s", b.String())
	}
}
