package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"connectrpc.com/connect"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
)

const eventsUsage = `Usage: pinfold events [--since ID] [-f] [--app ID] [-o json]

Prints the daemon's events still in its ring after event ID (default 0:
all of them): API calls, app lifecycle steps, cleanup steps with their
timings, OOM kills, signals, policy changes, anomalies. Each names the
event that caused it (parent). With -f, keeps printing new events.
-o json prints one JSON object per line (a stream, also without -f).

Flags:
`

func eventsCmd(host string, args []string) error {
	fs := newFlags("events")
	since := fs.Uint64("since", 0, "print events after event `ID`")
	follow := fs.Bool("f", false, "follow: keep printing new events")
	app := fs.String("app", "", "only the events of app `ID`")
	out := outputFlag(fs)
	pos, err := parseFlags(fs, eventsUsage, args)
	if err != nil {
		return err
	}
	if err := checkOutput("events", *out); err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: exitUsage, msg: "events: unexpected arguments: " + pos[0]}
	}
	c, err := dial("events", host)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	appID := *app
	if appID != "" && !isFullID(appID) {
		// A prefix or a name: the app must still be listed. (A whole id
		// is sent as is: its events outlive its removal.)
		ids, err := resolveIDs(ctx, host, c, []string{appID})
		if err != nil {
			return err
		}
		appID = ids[0]
	}
	stream, err := c.Events.Watch(ctx, connect.NewRequest(&v1.WatchRequest{SinceId: *since, Follow: *follow, App: appID}))
	if err != nil {
		return apiError(host, err)
	}
	defer stream.Close()
	for stream.Receive() {
		var err error
		if *out == "json" {
			err = printJSONLine(os.Stdout, stream.Msg())
		} else {
			err = printEvent(os.Stdout, stream.Msg())
		}
		if err != nil {
			return &exitError{code: exitFailed, msg: "events: writing: " + err.Error()}
		}
	}
	if err := stream.Err(); err != nil {
		return apiError(host, err)
	}
	return nil
}

// printEvent writes one event on one line:
//
//	2025-01-02 15:04:05.000123  #42 app.exited  app=0123456789abcdef parent=#41 value=3 detail="..."
func printEvent(w io.Writer, e *v1.Event) error {
	line := fmt.Sprintf("%s  #%-6d %-16s", e.GetTime().AsTime().Local().Format("2006-01-02 15:04:05.000000"), e.GetId(), cleanCell(e.GetKind()))
	if e.GetApp() != "" {
		line += " app=" + cleanCell(e.GetApp())
	}
	if e.GetOtherApp() != "" {
		line += " other=" + cleanCell(e.GetOtherApp())
	}
	if e.GetParent() != 0 {
		line += fmt.Sprintf(" parent=#%d", e.GetParent())
	}
	if e.GetValue() != 0 {
		line += " value=" + strconv.FormatInt(e.GetValue(), 10)
	}
	if e.GetDetail() != "" {
		line += " detail=" + strconv.Quote(e.GetDetail())
	}
	if p := e.GetPeer(); p != nil && (p.GetPid() != 0 || p.GetUid() != 0) {
		line += fmt.Sprintf(" peer=uid:%d,gid:%d,pid:%d", p.GetUid(), p.GetGid(), p.GetPid())
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
