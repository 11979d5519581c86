package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// placement is where the two ends of a test run: app is the CPU of the
// writer/sender (throughput) or of the calling app (round trips, mq_open);
// peer that of the reader/receiver or of whoever answers the calls (the
// raw echo process, or pinfold's supervisor). -1 is "not pinned".
type placement struct {
	Name string `json:"name"`
	App  int    `json:"appCPU"`
	Peer int    `json:"peerCPU"`
}

func (p placement) describe() string {
	switch {
	case p.App < 0:
		return "unpinned: the scheduler places every process"
	case p.App == p.Peer:
		return fmt.Sprintf("same CPU: both ends and the supervisor on CPU %d", p.App)
	default:
		return fmt.Sprintf("cross CPU: app/writer on CPU %d, peer/reader and the supervisor on CPU %d", p.App, p.Peer)
	}
}

// metric is one measured quantity and its target.
type metric struct {
	id     string
	name   string
	unit   string
	higher bool // higher values are better
	// minRatio: throughput target, pinfold >= minRatio x raw.
	minRatio float64
	// maxSame: latency target with both ends on one CPU, pinfold <= maxSame.
	// budget: latency target across CPUs, pinfold <= raw + budget: the
	// same added cost the same-CPU target allows over its anchor.
	maxSame, budget float64
}

func (m metric) informational() bool { return m.minRatio == 0 && m.maxSame == 0 }

func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// results collects per-round values: placement -> metric -> mode.
type results struct {
	placements []placement
	vals       map[string]map[string]map[string][]float64
	failures   map[string]failure // metric -> where and why its test failed
}

type failure struct{ placement, why string }

func newResults(pls []placement) *results {
	return &results{placements: pls, vals: map[string]map[string]map[string][]float64{}, failures: map[string]failure{}}
}

// fail records that the test of these metrics failed on the pinfold side
// in placement pl: its row there says so, whatever rounds it had before,
// and the placements after it have none.
func (r *results) fail(pl placement, metrics []string, why string) {
	for _, m := range metrics {
		r.failures[m] = failure{pl.Name, why}
	}
}

func (r *results) add(pl placement, mode string, v map[string]float64) {
	byMetric := r.vals[pl.Name]
	if byMetric == nil {
		byMetric = map[string]map[string][]float64{}
		r.vals[pl.Name] = byMetric
	}
	for id, x := range v {
		if byMetric[id] == nil {
			byMetric[id] = map[string][]float64{}
		}
		byMetric[id][mode] = append(byMetric[id][mode], x)
	}
}

// row is one line of the table.
type row struct {
	Placement string    `json:"placement"`
	Metric    string    `json:"metric"`
	Name      string    `json:"name"`
	Unit      string    `json:"unit"`
	Pinfold   jsonFloat `json:"pinfold"`
	Raw       jsonFloat `json:"raw"`
	// Ratio is the median over the rounds of pinfold/raw in each round
	// (the two ran back to back), which cancels drifts of the machine
	// that the ratio of the medians would keep.
	Ratio         jsonFloat `json:"ratio"`
	Target        string    `json:"target"`
	Result        string    `json:"result"` // pass, miss, info or fail
	Note          string    `json:"note,omitempty"`
	PinfoldRounds []float64 `json:"pinfoldRounds"`
	RawRounds     []float64 `json:"rawRounds"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// jsonFloat is a float64 that encodes NaN and infinities (a ratio of no
// rounds, or of zeros) as null, which encoding/json refuses to write.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// pairedRatio is the median of p[i]/r[i].
func pairedRatio(p, r []float64) float64 {
	n := min(len(p), len(r))
	if n == 0 {
		return math.NaN()
	}
	q := make([]float64, 0, n)
	for i := range n {
		q = append(q, p[i]/r[i])
	}
	return median(q)
}

// rows turns the results into table rows: medians over the rounds, the
// ratio pinfold/raw, and the verdict against the target. Rows of unpinned
// placements are informational: where the scheduler puts the two ends
// changes from round to round.
func (r *results) rows(ms []metric) []row {
	var out []row
	for _, pl := range r.placements {
		for _, m := range ms {
			v := r.vals[pl.Name][m.id]
			if f, ok := r.failures[m.id]; ok && (f.placement == pl.Name || v == nil) {
				// The values are those of the rounds before the failure.
				x := row{Placement: pl.Name, Metric: m.id, Name: m.name, Unit: m.unit,
					Pinfold: jsonFloat(median(v["pinfold"])), Raw: jsonFloat(median(v["raw"])),
					Ratio:  jsonFloat(pairedRatio(v["pinfold"], v["raw"])),
					Target: "-", Result: "fail", Note: f.why,
					PinfoldRounds: v["pinfold"], RawRounds: v["raw"]}
				if f.placement != pl.Name {
					x.Result = "not run"
				}
				out = append(out, x)
				continue
			}
			if v == nil {
				continue
			}
			x := row{
				Placement: pl.Name, Metric: m.id, Name: m.name, Unit: m.unit,
				Pinfold: jsonFloat(median(v["pinfold"])), Raw: jsonFloat(median(v["raw"])),
				Ratio:         jsonFloat(pairedRatio(v["pinfold"], v["raw"])),
				PinfoldRounds: v["pinfold"], RawRounds: v["raw"],
			}
			pass := true
			switch {
			case m.minRatio > 0:
				x.Target = fmt.Sprintf("≥ %.2f× raw", m.minRatio)
				pass = float64(x.Ratio) >= m.minRatio
			case m.maxSame > 0 && pl.App >= 0 && pl.App == pl.Peer:
				x.Target = fmt.Sprintf("≤ %g µs", m.maxSame)
				pass = float64(x.Pinfold) <= m.maxSame
			case m.budget > 0:
				x.Target = fmt.Sprintf("≤ raw + %g µs", m.budget)
				pass = float64(x.Pinfold) <= float64(x.Raw)+m.budget
			}
			switch {
			case m.informational():
				x.Target, x.Result = "-", "info"
			case pl.App < 0:
				x.Result = "info"
			case pass:
				x.Result = "pass"
			default:
				x.Result = "miss"
			}
			out = append(out, x)
		}
	}
	return out
}

func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch unit {
	case "GB/s":
		return fmt.Sprintf("%.2f GB/s", v)
	case "msg/s":
		return fmt.Sprintf("%.0fk msg/s", v/1e3)
	case "µs":
		return fmt.Sprintf("%.1f µs", v)
	case "faults":
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// report is what -o json prints.
type report struct {
	Machine    map[string]string `json:"machine"`
	Method     map[string]any    `json:"method"`
	Placements []placement       `json:"placements"`
	Rows       []row             `json:"rows"`
}

func writeJSON(w io.Writer, rep report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the facts and one table: name, pinfold, raw, ratio,
// target, result.
func writeTable(w io.Writer, rep report, describe func(placement) string) {
	fmt.Fprintln(w, "pinfold IPC beside raw kernel baselines (same binary, same run; medians over the rounds)")
	keys := make([]string, 0, len(rep.Machine))
	for k := range rep.Machine {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-22s %s\n", k, rep.Machine[k])
	}
	mkeys := make([]string, 0, len(rep.Method))
	for k := range rep.Method {
		mkeys = append(mkeys, k)
	}
	slices.Sort(mkeys)
	for _, k := range mkeys {
		fmt.Fprintf(w, "  %-22s %v\n", k, rep.Method[k])
	}
	fmt.Fprintln(w)
	const format = "%-52s %16s %16s %7s %16s  %s\n"
	head := fmt.Sprintf(format, "name", "pinfold", "raw", "ratio", "target", "result")
	fmt.Fprint(w, head)
	fmt.Fprintln(w, strings.Repeat("-", len([]rune(strings.TrimRight(head, "\n")))))
	last := ""
	for _, x := range rep.Rows {
		if x.Placement != last {
			for _, pl := range rep.Placements {
				if pl.Name == x.Placement {
					fmt.Fprintf(w, "[%s]\n", describe(pl))
				}
			}
			last = x.Placement
		}
		ratio := "-"
		if r := float64(x.Ratio); !math.IsNaN(r) && !math.IsInf(r, 0) {
			ratio = fmt.Sprintf("%.2f×", r)
		}
		fmt.Fprintf(w, format, x.Placement+": "+x.Name, formatValue(float64(x.Pinfold), x.Unit), formatValue(float64(x.Raw), x.Unit),
			ratio, x.Target, x.Result)
	}
	var misses []string
	notes := map[string]bool{}
	for _, x := range rep.Rows {
		if x.Result == "miss" {
			misses = append(misses, x.Placement+": "+x.Name)
		}
		if x.Note != "" && !notes[x.Note] {
			notes[x.Note] = true
			fmt.Fprintf(w, "fail: %s\n", x.Note)
		}
	}
	fmt.Fprintln(w)
	if len(misses) == 0 {
		fmt.Fprintln(w, "every target met")
	} else {
		fmt.Fprintf(w, "missed: %s\n", strings.Join(misses, "; "))
	}
}
