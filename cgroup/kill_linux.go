package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// freezer stops and resumes every task of a cgroup.
type freezer interface {
	freeze(ctx context.Context) error
	thaw(ctx context.Context) error
}

// killByFreezing empties a cgroup without cgroup.kill, the way runc does on
// cgroup v1: freeze it, so no task can fork or exit while it is listed;
// SIGKILL every listed task; thaw, so the kills are delivered; wait for the
// cgroup to empty. A list-and-kill loop without the freeze can chase a fork
// storm for ever. Rounds repeat until list comes back empty or ctx ends (a
// task that could not be frozen, or one that arrived between rounds, is
// caught by the next round).
func killByFreezing(ctx context.Context, fr freezer, list func() ([]int, error)) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	self := os.Getpid()
	for {
		// A task in uninterruptible sleep can hold the freeze off; kill
		// what can be killed anyway and try again next round.
		fctx, fcancel := context.WithTimeout(ctx, time.Second)
		freezeErr := fr.freeze(fctx)
		fcancel()

		pids, err := list()
		if err != nil {
			return errors.Join(fmt.Errorf("listing processes: %w", err), fr.thaw(ctx))
		}
		for _, pid := range pids {
			if pid <= 0 || pid == self {
				return errors.Join(fmt.Errorf("refusing to kill process %d: the supervisor itself is in the cgroup: %w", pid, ErrInvalid), fr.thaw(ctx))
			}
			signalKill(pid)
		}
		// A cgroup removed meanwhile has no freezer left to thaw.
		if err := fr.thaw(ctx); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}

		var b backoff
		for {
			pids, err := list()
			if err != nil {
				return fmt.Errorf("listing processes: %w", err)
			}
			if len(pids) == 0 {
				return nil
			}
			if b.d >= 32*time.Millisecond {
				break // next round
			}
			if err := b.wait(ctx); err != nil {
				return errors.Join(fmt.Errorf("%d processes still running: %w", len(pids), err), freezeErr)
			}
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(fmt.Errorf("processes still running: %w", err), freezeErr)
		}
	}
}

// signalKill sends SIGKILL to pid. The process may be gone already; that is
// what we want, so no error is reported.
func signalKill(pid int) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = p.Signal(os.Kill)
	_ = p.Release()
}
