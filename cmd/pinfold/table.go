package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
)

// table is human output in aligned columns, like docker ps.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

// add appends a row; cells are made safe to print (see cleanCell).
func (t *table) add(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = cleanCell(c)
	}
	t.rows = append(t.rows, row)
}

// write prints the header and rows, columns separated by at least three
// spaces.
func (t *table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// cleanCell keeps a cell on one line and free of terminal control
// sequences: apps' names and arguments come from whoever started them.
// Empty cells print as "-" so columns stay readable.
func cleanCell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ago says how long before now t was, like docker ps' CREATED column.
func ago(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return ""
	}
	d := now.Sub(t.AsTime())
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return plural(int(d/time.Second), "second") + " ago"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	}
	return plural(int(d/(24*time.Hour)), "day") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// timestamp formats an API time for humans (local time), or "" if unset.
func timestamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().Local().Format("2006-01-02 15:04:05.000 MST")
}

// dur is an API duration, 0 when unset.
func dur(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

// exitCell is the EXIT column: the docker-style status, and why in words
// ("137 (SIGKILL, timeout)"); "" when the app has not exited.
func exitCell(x *v1.ExitStatus) string {
	if x == nil {
		return ""
	}
	var why []string
	if x.GetSignal() != 0 {
		why = append(why, signalName(sysSignal(x.GetSignal())))
	}
	if x.GetOomKilled() {
		why = append(why, "oom")
	}
	if x.GetTimedOut() {
		why = append(why, "timeout")
	}
	s := fmt.Sprint(x.GetCode())
	if len(why) > 0 {
		s += " (" + strings.Join(why, ", ") + ")"
	}
	return s
}

// appsTable is ps' output.
func appsTable(apps []*v1.App, now time.Time) *table {
	t := newTable("ID", "NAME", "POLICY", "STATE", "PID", "CREATED", "EXIT", "COMMAND")
	for _, a := range apps {
		pid := ""
		if a.GetPid() > 0 && a.GetExit() == nil { // a dead app's pid is someone else's by now
			pid = fmt.Sprint(a.GetPid())
		}
		t.add(a.GetId(), a.GetName(), a.GetPolicy(), a.GetState(), pid, ago(a.GetCreated(), now),
			exitCell(a.GetExit()), truncate(strings.Join(a.GetArgs(), " "), 40))
	}
	return t
}

// usageTable is stats' output.
func usageTable(id string, u *v1.Usage) *table {
	t := newTable("ID", "CPU USER", "CPU SYSTEM", "THROTTLED", "MEMORY", "PEAK", "LIMIT", "PIDS", "PEAK", "LIMIT", "OOM KILLS")
	t.add(id, round(dur(u.GetCpuUser())), round(dur(u.GetCpuSystem())), round(dur(u.GetCpuThrottled())),
		bytesHuman(u.GetMemoryCurrent()), bytesHuman(u.GetMemoryPeak()), limitHuman(u.GetMemoryLimit(), bytesHuman),
		fmt.Sprint(u.GetPidsCurrent()), fmt.Sprint(u.GetPidsPeak()), limitHuman(u.GetPidsLimit(), func(n uint64) string { return fmt.Sprint(n) }),
		fmt.Sprint(u.GetOomKills()))
	return t
}

// limitHuman prints a limit, 0 meaning none.
func limitHuman(n uint64, f func(uint64) string) string {
	if n == 0 {
		return "none"
	}
	return f(n)
}

// policiesTable is policy list's output.
func policiesTable(ps []*v1.Policy, now time.Time) *table {
	t := newTable("NAME", "HASH", "FILE", "LOADED")
	for _, p := range ps {
		file := p.GetFile()
		if file == "" {
			file = "(built in)"
		}
		t.add(p.GetName(), shortHash(p.GetHash()), file, ago(p.GetLoaded(), now))
	}
	return t
}

// shortHash is the first 12 hex digits of a content hash.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
