package events

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestKindNames(t *testing.T) {
	// The names the API and the CLI show; changing one breaks clients.
	want := map[Kind]string{
		APICall: "api.call", AppCreated: "app.created", AppSpawned: "app.spawned",
		AppReady: "app.ready", AppRunning: "app.running", AppSignalled: "app.signalled",
		AppExited: "app.exited", AppOOMKilled: "app.oom_killed", AppTimedOut: "app.timed_out",
		AppStartFailed: "app.start_failed", CleanupStep: "cleanup.step", AppCleaned: "app.cleaned",
		AppRemoved: "app.removed", PolicyApplied: "policy.applied", PolicyRejected: "policy.rejected",
		PolicyDeleted: "policy.deleted", PolicyReloaded: "policy.reloaded",
		MemoryPressure: "memory.pressure", PidsLimitHit: "limit.pids", Anomaly: "anomaly",
		DaemonStarted: "daemon.started", DaemonStopping: "daemon.stopping",
		Recovered: "daemon.recovered", EventsDropped: "events.dropped",
		IPCGranted: "ipc.granted", IPCDenied: "ipc.denied", IPCCreated: "ipc.created",
		IPCRemoved: "ipc.removed", IPCReleased: "ipc.released", IPCHostile: "ipc.hostile",
	}
	if got := len(Kinds()); got != len(want) {
		t.Errorf("Kinds() has %d kinds, the table %d: name the new kind here", got, len(want))
	}
	seen := map[string]Kind{}
	for _, k := range Kinds() {
		name := k.String()
		if want[k] != name {
			t.Errorf("Kind %d: String() = %q, want %q", k, name, want[k])
		}
		if other, dup := seen[name]; dup {
			t.Errorf("kinds %d and %d share the name %q", other, k, name)
		}
		seen[name] = k
		back, err := ParseKind(name)
		if err != nil || back != k {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", name, back, err, k)
		}
	}
}

func TestKindInvalid(t *testing.T) {
	for _, tc := range []struct {
		k    Kind
		want string
	}{
		{0, "kind(0)"},
		{numKinds, "kind(" + strconv.Itoa(int(numKinds)) + ")"},
		{65535, "kind(65535)"},
	} {
		if tc.k.Valid() {
			t.Errorf("Kind(%d).Valid() = true", tc.k)
		}
		if got := tc.k.String(); got != tc.want {
			t.Errorf("Kind(%d).String() = %q, want %q", tc.k, got, tc.want)
		}
		if _, err := tc.k.MarshalText(); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("Kind(%d).MarshalText() error = %v, want ErrUnknownKind", tc.k, err)
		}
	}
}

func TestParseKindRejects(t *testing.T) {
	for _, name := range []string{"", "app", "App.Exited", "app.exited ", "kind(3)", "app_exited"} {
		if k, err := ParseKind(name); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) = %v, %v; want ErrUnknownKind", name, k, err)
		}
	}
}

func TestKindJSON(t *testing.T) {
	type doc struct{ Kind Kind }
	b, err := json.Marshal(doc{AppOOMKilled})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"Kind":"app.oom_killed"}` {
		t.Errorf("json.Marshal = %s", b)
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil || d.Kind != AppOOMKilled {
		t.Errorf("json.Unmarshal(%s) = %v, %v", b, d.Kind, err)
	}
	if err := json.Unmarshal([]byte(`{"Kind":"app.nope"}`), &d); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("json.Unmarshal of an unknown kind: %v, want ErrUnknownKind", err)
	}
}

func FuzzParseKind(f *testing.F) {
	for _, k := range Kinds() {
		f.Add(k.String())
	}
	f.Add("kind(0)")
	f.Add("app.")
	f.Fuzz(func(t *testing.T, name string) {
		k, err := ParseKind(name)
		if err != nil {
			if !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), "event kind") {
				t.Fatalf("ParseKind(%q) error %v", name, err)
			}
			return
		}
		if !k.Valid() || k.String() != name {
			t.Fatalf("ParseKind(%q) = %d, which prints as %q", name, k, k.String())
		}
	})
}
