package monitor

import (
	"fmt"
	"math"
	"sync"
	"testing"
)

func near(a, b, rel float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}

func TestWelford(t *testing.T) {
	offsets := func(base float64, xs ...float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = base + x
		}
		return out
	}
	for _, tc := range []struct {
		name         string
		xs           []float64
		n            int
		mean, sd     float64
		relTolerance float64
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one value", []float64{42}, 1, 42, 0, 0},
		{"two equal", []float64{3, 3}, 2, 3, 0, 0},
		{"textbook", []float64{2, 4, 4, 4, 5, 5, 7, 9}, 8, 5, math.Sqrt(32.0 / 7), 1e-12},
		{"negative", []float64{-1, -2, -3}, 3, -2, 1, 1e-12},
		// Large values with a small spread: the sum-of-squares formula
		// (Σx² - (Σx)²/n) cancels every significant digit here.
		{"offset 1e9", offsets(1e9, 4, 7, 13, 16), 4, 1e9 + 10, math.Sqrt(30), 1e-9},
		{"offset 1e12", offsets(1e12, 4, 7, 13, 16), 4, 1e12 + 10, math.Sqrt(30), 1e-5},
		{"bytes of memory", offsets(64<<30, 0, 4096, 8192), 3, 64<<30 + 4096, 4096, 1e-9},
		{"not finite values are ignored", []float64{1, math.NaN(), 3, math.Inf(1), math.Inf(-1)}, 2, 2, math.Sqrt2, 1e-12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w Welford
			for _, x := range tc.xs {
				w.Add(x)
			}
			if w.N() != tc.n {
				t.Errorf("N = %d, want %d", w.N(), tc.n)
			}
			if !near(w.Mean(), tc.mean, tc.relTolerance) {
				t.Errorf("Mean = %.17g, want %.17g", w.Mean(), tc.mean)
			}
			if !near(w.StdDev(), tc.sd, tc.relTolerance) {
				t.Errorf("StdDev = %.17g, want %.17g", w.StdDev(), tc.sd)
			}
		})
	}
}

// TestWelfordLongRun: a million values stay accurate.
func TestWelfordLongRun(t *testing.T) {
	var w Welford
	const n = 1_000_000
	for i := range n {
		w.Add(1e9 + float64(i%2*2-1)) // 1e9-1, 1e9+1, ...
	}
	if !near(w.Mean(), 1e9, 1e-15) {
		t.Errorf("Mean = %.17g, want 1e9", w.Mean())
	}
	// Population variance 1; sample variance n/(n-1).
	if want := math.Sqrt(float64(n) / (n - 1)); !near(w.StdDev(), want, 1e-9) {
		t.Errorf("StdDev = %.17g, want %.17g", w.StdDev(), want)
	}
}

func TestAnomalous(t *testing.T) {
	// n values alternating 10-1, 10+1: mean 10, σ just above 1.
	alternating := func(n int) *Welford {
		var w Welford
		for i := range n {
			w.Add(10 + float64(i%2*2-1))
		}
		return &w
	}
	constant := func(n int) *Welford {
		var w Welford
		for range n {
			w.Add(7)
		}
		return &w
	}
	for _, tc := range []struct {
		name       string
		w          *Welford
		x          float64
		want       bool
		wantSigmas float64 // checked when > 0
	}{
		{"far but only 29 samples", alternating(29), 100, false, 0},
		{"far with 30 samples", alternating(30), 100, true, 90 / alternating(30).StdDev()},
		{"far below with 30 samples", alternating(30), -80, true, 90 / alternating(30).StdDev()},
		{"within 3σ", alternating(100), 12.5, false, 2.5 / alternating(100).StdDev()},
		{"just past 3σ", alternating(100), 10 + 3.01*alternating(100).StdDev(), true, 3.01},
		{"exactly 3σ is not past it", alternating(100), 10 + 3*alternating(100).StdDev(), false, 3},
		{"σ = 0", constant(50), 8, false, 0},
		{"no samples", &Welford{}, 1, false, 0},
		{"NaN", alternating(100), math.NaN(), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, sigmas := tc.w.Anomalous(tc.x)
			if got != tc.want {
				t.Errorf("Anomalous(%g) = %v (%.4gσ), want %v", tc.x, got, sigmas, tc.want)
			}
			if tc.wantSigmas > 0 && !near(sigmas, tc.wantSigmas, 1e-9) {
				t.Errorf("sigmas = %.6g, want %.6g", sigmas, tc.wantSigmas)
			}
			if tc.wantSigmas == 0 && tc.w.StdDev() == 0 && sigmas != 0 {
				t.Errorf("sigmas = %g with σ = 0, want 0", sigmas)
			}
		})
	}
}

func TestBaselineObserve(t *testing.T) {
	b := NewBaseline()
	normal := func(i int) Sample {
		d := float64(i%2*2 - 1) // ±1
		return Sample{Duration: 10 + d, PeakMemory: 100e6 + d*1e6, CPU: 2 + d*0.1}
	}
	for i := range MinSamples {
		if got := b.Observe("web", normal(i)); got != nil {
			t.Fatalf("sample %d: anomalies %+v while the baseline has fewer than %d samples", i, got, MinSamples)
		}
	}
	// Normal again: nothing.
	if got := b.Observe("web", normal(0)); got != nil {
		t.Errorf("a normal sample: %+v", got)
	}
	before, _ := b.Of("web")
	// Peak memory and CPU far off, duration normal.
	got := b.Observe("web", Sample{Duration: 10, PeakMemory: 500e6, CPU: 20})
	if len(got) != 2 || got[0].Metric != MetricPeakMemory || got[1].Metric != MetricCPU {
		t.Fatalf("anomalies %+v, want peak_memory then cpu_time", got)
	}
	a := got[0]
	// Judged against the baseline as it was before this sample.
	if a.Value != 500e6 || a.Mean != before.PeakMemory.Mean() || a.StdDev != before.PeakMemory.StdDev() {
		t.Errorf("anomaly %+v: want value 500e6, mean %g, σ %g", a, before.PeakMemory.Mean(), before.PeakMemory.StdDev())
	}
	if want := (500e6 - a.Mean) / a.StdDev; !near(a.Sigmas, want, 1e-12) {
		t.Errorf("Sigmas = %g, want %g", a.Sigmas, want)
	}
	// ... and then added to it.
	after, _ := b.Of("web")
	if after.PeakMemory.N() != before.PeakMemory.N()+1 {
		t.Errorf("the anomalous sample was not added: N %d → %d", before.PeakMemory.N(), after.PeakMemory.N())
	}
	// Other policies have their own baseline.
	if got := b.Observe("batch", Sample{Duration: 1e6}); got != nil {
		t.Errorf("first sample of another policy: %+v", got)
	}
	if m, ok := b.Of("batch"); !ok || m.Duration.N() != 1 {
		t.Errorf("Of(batch) = %+v, %v", m, ok)
	}
	b.Forget("web")
	if _, ok := b.Of("web"); ok {
		t.Error("Of(web) after Forget still has a baseline")
	}
}

func TestBaselineObserveDoesNotAllocate(t *testing.T) {
	b := NewBaseline()
	b.Observe("p", Sample{Duration: 1})
	if n := testing.AllocsPerRun(100, func() { b.Observe("p", Sample{Duration: 1, PeakMemory: 2, CPU: 3}) }); n != 0 {
		t.Errorf("Observe without anomalies allocates %v times", n)
	}
}

func TestBaselineConcurrent(t *testing.T) {
	b := NewBaseline()
	const goroutines, each = 4, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				b.Observe(fmt.Sprintf("p%d", i%2), Sample{Duration: float64(g), CPU: 1})
			}
		})
	}
	wg.Wait()
	for _, p := range []string{"p0", "p1"} {
		m, _ := b.Of(p)
		if m.Duration.N() != goroutines*each/2 || !near(m.Duration.Mean(), 1.5, 1e-12) {
			t.Errorf("%s: N %d mean %g, want %d and 1.5", p, m.Duration.N(), m.Duration.Mean(), goroutines*each/2)
		}
	}
}
