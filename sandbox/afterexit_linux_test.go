package sandbox_test

import (
	"testing"
	"time"
)

// TestAfterExit: functions registered before the exit run once Done is
// closed, on the reaping goroutine, and may close the app; one registered
// after the exit runs at once.
func TestAfterExit(t *testing.T) {
	sup := newSupervisor(t)
	app, err := sup.Start(shSpec(t, nil, "exec sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan bool, 2)
	app.AfterExit(func() {
		exited := false
		select {
		case <-app.Done():
			exited = true
		default: // ran before the exit
		}
		if rep := app.Close(); rep.Err() != nil {
			t.Errorf("Close from AfterExit: %v", rep.Err())
		}
		ran <- exited
	})
	select {
	case <-ran:
		t.Fatal("AfterExit ran while the app was running")
	case <-time.After(50 * time.Millisecond):
	}
	if err := app.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case done := <-ran:
		if !done {
			t.Error("AfterExit ran before Done was closed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("AfterExit did not run after the exit")
	}
	late := make(chan struct{})
	app.AfterExit(func() { close(late) })
	select {
	case <-late:
	case <-time.After(30 * time.Second):
		t.Fatal("AfterExit registered after the exit did not run")
	}
}
