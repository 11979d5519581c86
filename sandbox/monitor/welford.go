package monitor

import (
	"math"
	"sync"
)

// MinSamples is how many samples a Welford needs before Anomalous can say
// yes: fewer make the standard deviation too uncertain to judge by.
const MinSamples = 30

// AnomalySigmas is how far from the mean, in standard deviations, a value
// must be to be anomalous.
const AnomalySigmas = 3

// Welford is a running mean and variance, updated one value at a time with
// Welford's method, which stays accurate where the textbook sum of squares
// loses every digit (values large against their spread). The zero value is
// ready to use. It is not safe for concurrent use on its own (Baseline
// locks).
type Welford struct {
	n    int
	mean float64
	m2   float64 // sum of squared differences from the mean
}

// Add records x. Values that are not finite (NaN, ±Inf) are ignored: one
// would poison the mean for good.
func (w *Welford) Add(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

// N is the number of values recorded.
func (w *Welford) N() int { return w.n }

// Mean is the mean of the values recorded, 0 before the first.
func (w *Welford) Mean() float64 { return w.mean }

// Variance is the sample variance (divided by N-1), 0 with fewer than two
// values.
func (w *Welford) Variance() float64 {
	if w.n < 2 {
		return 0
	}
	return w.m2 / float64(w.n-1)
}

// StdDev is the sample standard deviation.
func (w *Welford) StdDev() float64 { return math.Sqrt(w.Variance()) }

// Anomalous reports whether x is more than AnomalySigmas standard
// deviations from the mean, which needs at least MinSamples values and a
// standard deviation above 0. sigmas is |x - mean| / σ whenever σ > 0 (also
// with fewer samples), and 0 otherwise.
func (w *Welford) Anomalous(x float64) (anomalous bool, sigmas float64) {
	sd := w.StdDev()
	if sd == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return false, 0
	}
	sigmas = math.Abs(x-w.mean) / sd
	return w.n >= MinSamples && sigmas > AnomalySigmas, sigmas
}

// Sample is what a finished app is judged by.
type Sample struct {
	Duration   float64 // seconds it ran (wall clock)
	PeakMemory float64 // bytes: the highest memory use of its cgroup
	CPU        float64 // seconds of CPU time, user and system
}

// The metric names an Anomaly carries.
const (
	MetricDuration   = "duration"
	MetricPeakMemory = "peak_memory"
	MetricCPU        = "cpu_time"
)

// Anomaly is one metric of a sample that was anomalous against its
// policy's baseline (as it was before the sample was added).
type Anomaly struct {
	Metric string  // MetricDuration, MetricPeakMemory or MetricCPU
	Value  float64 // the sample's value
	Mean   float64
	StdDev float64
	Sigmas float64 // |Value - Mean| / StdDev
}

// Metrics is one policy's baseline.
type Metrics struct {
	Duration, PeakMemory, CPU Welford
}

// Baseline keeps a Metrics per policy name. It is safe for concurrent use.
// It holds a few dozen bytes per policy and forgets nothing by itself: call
// Forget when a policy is deleted.
type Baseline struct {
	mu       sync.Mutex
	policies map[string]*Metrics
}

// NewBaseline returns an empty Baseline.
func NewBaseline() *Baseline {
	return &Baseline{policies: make(map[string]*Metrics)}
}

// Observe judges a finished app of policy against that policy's baseline,
// then adds it to the baseline. It returns the anomalous metrics, in the
// order duration, peak memory, CPU time; nil when there are none (no
// allocation).
func (b *Baseline) Observe(policy string, s Sample) []Anomaly {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.policies[policy]
	if m == nil {
		m = new(Metrics)
		b.policies[policy] = m
	}
	var out []Anomaly
	for _, c := range [...]struct {
		name string
		w    *Welford
		x    float64
	}{
		{MetricDuration, &m.Duration, s.Duration},
		{MetricPeakMemory, &m.PeakMemory, s.PeakMemory},
		{MetricCPU, &m.CPU, s.CPU},
	} {
		if bad, sigmas := c.w.Anomalous(c.x); bad {
			out = append(out, Anomaly{Metric: c.name, Value: c.x, Mean: c.w.Mean(), StdDev: c.w.StdDev(), Sigmas: sigmas})
		}
		c.w.Add(c.x)
	}
	return out
}

// Of returns a copy of policy's baseline; ok is false when no app of that
// policy was observed.
func (b *Baseline) Of(policy string) (m Metrics, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.policies[policy]; p != nil {
		return *p, true
	}
	return Metrics{}, false
}

// Forget drops policy's baseline.
func (b *Baseline) Forget(policy string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.policies, policy)
}
