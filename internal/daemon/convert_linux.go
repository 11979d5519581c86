package daemon

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/sandbox"
)

func timeProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// proto describes the app for the API.
func (e *appEntry) proto() *v1.App {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := &v1.App{
		Id:         e.id,
		Name:       e.name,
		State:      e.app.State().String(),
		Policy:     e.policy.Name,
		PolicyHash: e.policy.Hash,
		Args:       e.args,
		Pid:        int32(e.app.Pid()),
		Created:    timeProto(e.created),
		Started:    timeProto(e.started),
		Exited:     timeProto(e.exitedAt),
		Detached:   e.detached,
		Owner:      &v1.Peer{Uid: e.owner.UID, Gid: e.owner.GID, Pid: e.owner.PID},
	}
	if e.exit != nil {
		a.Exit = exitProto(e.exit)
	}
	for _, p := range e.app.StartPhases() {
		a.StartPhases = append(a.StartPhases, &v1.Phase{Name: p.Name, Duration: durationProto(p.Duration)})
	}
	for _, s := range e.cleanup.Steps {
		a.Cleanup = append(a.Cleanup, &v1.CleanupStep{Resource: string(s.Resource), Name: s.Name, Duration: durationProto(s.Duration), Error: s.Err})
	}
	return a
}

// exitProto is the app's exit status (nil before it exited).
func (e *appEntry) exitProto() *v1.ExitStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exit == nil {
		return &v1.ExitStatus{Code: -1, Error: "the app never ran"}
	}
	x := exitProto(e.exit)
	x.Usage = usageProto(e.usage)
	for _, s := range e.cleanup.Steps {
		x.Cleanup = append(x.Cleanup, &v1.CleanupStep{Resource: string(s.Resource), Name: s.Name, Duration: durationProto(s.Duration), Error: s.Err})
	}
	return x
}

func exitProto(x *sandbox.Exit) *v1.ExitStatus {
	return &v1.ExitStatus{
		Code:      int32(x.ExitCode()),
		Signal:    int32(x.Signal),
		OomKilled: x.OOMKilled,
		TimedOut:  x.TimedOut,
		Wall:      durationProto(x.Wall),
		Error:     x.Err,
	}
}

func usageProto(u *cgroup.Stats) *v1.Usage {
	if u == nil {
		return nil
	}
	return &v1.Usage{
		CpuUser:       durationProto(u.CPUUser),
		CpuSystem:     durationProto(u.CPUSystem),
		CpuThrottled:  durationProto(u.CPUThrottled),
		MemoryCurrent: u.MemoryCurrent,
		MemoryPeak:    u.MemoryPeak,
		MemoryLimit:   u.MemoryLimit,
		OomKills:      u.OOMKills,
		PidsCurrent:   u.PidsCurrent,
		PidsPeak:      u.PidsPeak,
		PidsLimit:     u.PidsLimit,
	}
}
