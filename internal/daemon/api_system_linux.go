package daemon

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/events"
)

// eventService implements the EventService API.
type eventService struct{ d *Daemon }

// Watch replays what the ring still holds after since_id, then follows.
func (s *eventService) Watch(ctx context.Context, req *connect.Request[v1.WatchRequest], stream *connect.ServerStream[v1.Event]) error {
	app := req.Msg.GetApp()
	if app != "" {
		if err := checkID(app); err != nil {
			return connect.NewError(connect.CodeInvalidArgument, err)
		}
	}
	if !req.Msg.GetFollow() {
		// Replay what the ring holds, page by page, and stop.
		after := req.Msg.GetSinceId()
		for {
			evs, _ := s.d.events.Since(after, 1024)
			if len(evs) == 0 {
				return nil
			}
			for _, ev := range evs {
				after = ev.ID
				if app != "" && ev.App != app && ev.Other != app {
					continue
				}
				if err := stream.Send(eventProto(ev)); err != nil {
					return err
				}
			}
		}
	}
	sub := s.d.events.Subscribe(events.SubscribeOptions{After: req.Msg.GetSinceId(), App: app})
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return connect.NewError(connect.CodeInternal, err)
		}
		if err := stream.Send(eventProto(ev)); err != nil {
			return err
		}
	}
}

func timeFromUnixNano(ns int64) time.Time { return time.Unix(0, ns) }

func eventProto(e events.Event) *v1.Event {
	return &v1.Event{
		Id:       e.ID,
		Time:     timestamppb.New(timeFromUnixNano(e.Time)),
		Kind:     e.Kind.String(),
		App:      e.App,
		OtherApp: e.Other,
		Parent:   e.Parent,
		Value:    e.Value,
		Detail:   e.Detail,
		Peer:     &v1.Peer{Uid: e.Peer.UID, Gid: e.Peer.GID, Pid: e.Peer.PID},
	}
}

// systemService implements the SystemService API.
type systemService struct{ d *Daemon }

func (s *systemService) Info(ctx context.Context, req *connect.Request[v1.InfoRequest]) (*connect.Response[v1.InfoResponse], error) {
	f := sandbox.ProbeFeatures(s.d.sup)
	resp := &v1.InfoResponse{
		Version:           Version(),
		Kernel:            f.Kernel,
		CgroupMode:        f.CgroupMode,
		CgroupControllers: f.CgroupControllers,
		SeccompUserNotify: f.SeccompUserNotify,
		LandlockAbi:       int32(f.LandlockABI),
		UserNamespaces:    f.UserNamespaces,
		Pidfd:             f.Pidfd,
		StateDir:          s.d.cfg.StateDir,
		PolicyDir:         s.d.cfg.PolicyDir,
		AppsRunning:       int32(s.d.running()),
	}
	return connect.NewResponse(resp), nil
}

func (s *systemService) Health(ctx context.Context, req *connect.Request[v1.HealthRequest]) (*connect.Response[v1.HealthResponse], error) {
	s.d.mu.Lock()
	stopping := s.d.stopping
	s.d.mu.Unlock()
	if stopping {
		return connect.NewResponse(&v1.HealthResponse{Status: "stopping"}), nil
	}
	return connect.NewResponse(&v1.HealthResponse{Status: "ok"}), nil
}

func (s *systemService) Version(ctx context.Context, req *connect.Request[v1.VersionRequest]) (*connect.Response[v1.VersionResponse], error) {
	return connect.NewResponse(&v1.VersionResponse{Version: Version()}), nil
}

// running counts apps that have not exited.
func (d *Daemon) running() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, e := range d.apps {
		if !e.isDone() {
			n++
		}
	}
	return n
}

// Version is the module version or VCS revision pinfold was built from.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
