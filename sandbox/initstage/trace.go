package initstage

import (
	"strconv"
	"strings"
	"time"
)

// Phase is one step of the init stage and how long it took; the init stage
// reports its phases with 'ready' so start latency can be explained.
type Phase struct {
	Name     string
	Duration time.Duration
}

// tracer collects phases cheaply (one clock read each) in the init stage.
type tracer struct {
	last time.Time
	buf  []byte
}

func (t *tracer) start() {
	t.last = time.Now()
	t.buf = append(t.buf, msgReady)
}

func (t *tracer) mark(name string) {
	now := time.Now()
	t.buf = append(t.buf, name...)
	t.buf = append(t.buf, '=')
	t.buf = strconv.AppendInt(t.buf, int64(now.Sub(t.last)), 10)
	t.buf = append(t.buf, ';')
	t.last = now
}

// ready is the ready message: 'R' then "name=ns;" per phase.
func (t *tracer) ready() []byte { return t.buf }

// parsePhases decodes the phases of a ready message, skipping anything
// malformed (they are informational only).
func parsePhases(msg []byte) []Phase {
	var out []Phase
	for _, item := range strings.Split(string(msg[1:]), ";") {
		name, ns, ok := strings.Cut(item, "=")
		if !ok {
			continue
		}
		d, err := strconv.ParseInt(ns, 10, 64)
		if err != nil || d < 0 {
			continue
		}
		out = append(out, Phase{Name: name, Duration: time.Duration(d)})
	}
	return out
}
