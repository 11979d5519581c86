package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/pinfold/pinfold/sandbox/policy"
)

// The daemon's command line. Keep daemonFlags in step with `pinfold daemon`:
// every flag takes a value, checked by the function beside it.
const (
	daemonBinary  = "/usr/local/bin/pinfold"
	daemonCommand = "daemon"
)

var daemonFlags = map[string]func(string) error{
	"socket":       absPath,
	"state-dir":    absPath,
	"policy-dir":   absPath,
	"metrics-addr": hostPort,
	"group":        nonEmpty,
	"config":       absPath,
	"log-format":   oneOf("text", "json"),
	"events":       positiveInt,
}

// daemonDefaults are the values of the flags a command line leaves out.
var daemonDefaults = map[string]string{
	"socket":       "/run/pinfold/pinfold.sock",
	"state-dir":    "/run/pinfold",
	"policy-dir":   "/etc/pinfold/policies.d",
	"metrics-addr": "127.0.0.1:9464",
}

// Capacity the deploy files are sized for.
const (
	appsPerHost = 1000
	fdsPerApp   = 10   // pidfd, stdio pipes, log file, record lock, cgroup fd, ...
	daemonFDs   = 1024 // clients, listeners, state files
	// stopMargin is what the daemon needs beyond the longest stopTimeout to
	// kill what is left and release it.
	stopMargin = 5 * time.Second
)

func absPath(v string) error {
	if !filepath.IsAbs(v) || filepath.Clean(v) != v {
		return fmt.Errorf("%q is not a clean absolute path", v)
	}
	return nil
}

func hostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1..65535", v, port)
	}
	return nil
}

// loopback checks what the daemon checks of --metrics-addr: the metrics
// name apps and policies, so it serves them on loopback addresses only.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address; the daemon refuses it", addr)
	}
	return nil
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	return nil
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
		}
		return nil
	}
}

func positiveInt(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		return fmt.Errorf("%q is not a positive integer", v)
	}
	return nil
}

// parseDaemonArgs checks a `pinfold daemon` command line (argv[0] included)
// the way Go's flag package reads it (-f v, --f v, -f=v, --f=v) and returns
// every flag's value, defaults filled in.
func parseDaemonArgs(argv []string) (map[string]string, error) {
	if len(argv) < 2 || argv[0] != daemonBinary || argv[1] != daemonCommand {
		return nil, fmt.Errorf("command %q: want %s %s [flags]", argv, daemonBinary, daemonCommand)
	}
	got := maps.Clone(daemonDefaults)
	seen := map[string]bool{}
	args := argv[2:]
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			name, ok = strings.CutPrefix(a, "-")
		}
		if !ok || name == "" || strings.HasPrefix(name, "-") {
			return nil, fmt.Errorf("argument %q: the daemon takes flags only", a)
		}
		name, value, hasValue := strings.Cut(name, "=")
		check, known := daemonFlags[name]
		if !known {
			return nil, fmt.Errorf("flag --%s: pinfold daemon has no such flag (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(daemonFlags)), ", "))
		}
		if !hasValue {
			if len(args) == 0 {
				return nil, fmt.Errorf("flag --%s: missing value", name)
			}
			value, args = args[0], args[1:]
		}
		if seen[name] {
			return nil, fmt.Errorf("flag --%s given twice", name)
		}
		seen[name] = true
		if err := check(value); err != nil {
			return nil, fmt.Errorf("flag --%s: %w", name, err)
		}
		got[name] = value
	}
	return got, nil
}

func TestParseDaemonArgs(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want map[string]string // checked entries; nil: an error is expected
	}{
		{[]string{daemonBinary, "daemon"}, daemonDefaults},
		{[]string{daemonBinary, "daemon", "--socket", "/s/p.sock", "-group=g", "--events=10"},
			map[string]string{"socket": "/s/p.sock", "group": "g", "events": "10", "state-dir": "/run/pinfold"}},
		{[]string{daemonBinary, "daemon", "--metrics-addr", ":9464"}, map[string]string{"metrics-addr": ":9464"}},
		{[]string{daemonBinary, "run"}, nil},
		{[]string{"/usr/bin/pinfold", "daemon"}, nil},
		{[]string{daemonBinary, "daemon", "--sockets", "/s"}, nil},
		{[]string{daemonBinary, "daemon", "--socket"}, nil},
		{[]string{daemonBinary, "daemon", "--socket", "run/s"}, nil},
		{[]string{daemonBinary, "daemon", "--log-format", "xml"}, nil},
		{[]string{daemonBinary, "daemon", "--events", "0"}, nil},
		{[]string{daemonBinary, "daemon", "--metrics-addr", "9464"}, nil},
		{[]string{daemonBinary, "daemon", "--group", "a", "--group", "b"}, nil},
		{[]string{daemonBinary, "daemon", "/etc/pinfold"}, nil},
	} {
		got, err := parseDaemonArgs(tc.argv)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q: accepted, want an error", tc.argv)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.argv, err)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q: --%s = %q, want %q", tc.argv, k, got[k], v)
			}
		}
	}
}

// ---- systemd ----

const unitPath = "systemd/pinfold.service"

// unit is a parsed unit file: section → key → values, in file order.
type unit map[string]map[string][]string

// one returns the single value of key in section.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) != 1 {
		t.Fatalf("%s: [%s] %s is set %d times, want once", unitPath, section, key, len(vs))
	}
	return vs[0]
}

// parseUnit reads a systemd unit file: [Section] headers, Key=Value lines,
// '#' and ';' comments, and lines continued with a trailing backslash.
func parseUnit(data []byte) (unit, error) {
	u := unit{}
	var section, pending string
	s := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: malformed section header %q", n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] != nil {
				return nil, fmt.Errorf("line %d: section [%s] appears twice", n, section)
			}
			u[section] = map[string][]string{}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not Key=Value inside a section", n, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		u[section][key] = append(u[section][key], value)
	}
	if pending != "" {
		return nil, errors.New("file ends in a continued line")
	}
	return u, s.Err()
}

// commandLine splits an Exec*= value into words. The unit uses no quoting,
// prefixes or specifiers; if it ever does, this must learn them.
func commandLine(v string) ([]string, error) {
	if strings.ContainsAny(v, `"'%`) || strings.HasPrefix(v, "-") || strings.HasPrefix(v, "@") ||
		strings.HasPrefix(v, "+") || strings.HasPrefix(v, "!") || strings.HasPrefix(v, ":") {
		return nil, fmt.Errorf("%q uses quoting, a prefix or a specifier this test does not parse", v)
	}
	return strings.Fields(v), nil
}

// timeSpan parses the systemd time spans the unit uses: "20s", "1min", "90".
func timeSpan(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(v, "min", "m"), " ", ""))
}

func TestParseUnit(t *testing.T) {
	good := "# c\n[Unit]\nA = 1\n; c\n[Service]\nExecStart=/x \\\n  -a \\\n  -b\nE=1\nE=2\n"
	u, err := parseUnit([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := u["Unit"]["A"]; !slices.Equal(got, []string{"1"}) {
		t.Errorf("A = %q", got)
	}
	if got, _ := commandLine(u["Service"]["ExecStart"][0]); !slices.Equal(got, []string{"/x", "-a", "-b"}) {
		t.Errorf("ExecStart = %q", got)
	}
	if got := u["Service"]["E"]; !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("E = %q", got)
	}
	for _, bad := range []string{"A=1\n", "[Unit\n", "[Unit]\nA\n", "[Unit]\n[Unit]\n", "[Unit]\nA=1 \\\n"} {
		if _, err := parseUnit([]byte(bad)); err == nil {
			t.Errorf("parseUnit(%q) accepted", bad)
		}
	}
	for v, want := range map[string]time.Duration{"20s": 20 * time.Second, "90": 90 * time.Second, "1min 30s": 90 * time.Second} {
		if got, err := timeSpan(v); err != nil || got != want {
			t.Errorf("timeSpan(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
}

// unitForbidden are settings the unit must not have, with the reason: each
// would break the daemon or change what every app inherits.
var unitForbidden = map[string]string{
	"Sockets":                 "the daemon does not support socket activation",
	"NotifyAccess":            "the daemon does not send sd_notify messages",
	"WatchdogSec":             "the daemon does not send sd_notify watchdog pings",
	"PIDFile":                 "the daemon does not fork; its pid file is for operators",
	"ProtectSystem":           "a private mount namespace: apps' binds would see a read-only host",
	"ProtectHome":             "a private mount namespace: policies could not bind /home, /root",
	"PrivateTmp":              "a private mount namespace: binds of /tmp would see the service's own",
	"PrivateDevices":          "a private /dev and a device cgroup for every app",
	"PrivateMounts":           "a private mount namespace: apps' view differs from the host",
	"PrivateNetwork":          "apps with namespaces.net: false must share the host's network",
	"PrivateIPC":              "apps with namespaces.ipc: false must share the host's IPC",
	"PrivateUsers":            "the daemon needs the real root",
	"NetworkNamespacePath":    "apps with namespaces.net: false must share the host's network",
	"ReadOnlyPaths":           "a private mount namespace",
	"InaccessiblePaths":       "a private mount namespace",
	"TemporaryFileSystem":     "a private mount namespace",
	"BindPaths":               "a private mount namespace",
	"BindReadOnlyPaths":       "a private mount namespace",
	"RootDirectory":           "apps' binds must resolve on the host",
	"RootImage":               "apps' binds must resolve on the host",
	"ProtectKernelTunables":   "makes /sys read-only; the daemon writes cgroupfs",
	"ProtectKernelModules":    "a private mount namespace and a smaller capability bounding set",
	"ProtectKernelLogs":       "a private mount namespace and a seccomp filter every app would inherit",
	"ProtectControlGroups":    "makes /sys/fs/cgroup read-only; the daemon writes it",
	"ProtectProc":             "a private /proc mount",
	"ProcSubset":              "a private /proc mount",
	"ProtectClock":            "a seccomp filter every app would inherit",
	"ProtectHostname":         "a UTS namespace apps with namespaces.uts: false would share",
	"RestrictNamespaces":      "the daemon creates namespaces",
	"SystemCallFilter":        "a seccomp filter every app would inherit",
	"SystemCallArchitectures": "a seccomp filter every app would inherit",
	"MemoryDenyWriteExecute":  "a seccomp filter every app would inherit; breaks JITs",
	"LockPersonality":         "a seccomp filter every app would inherit",
	"RestrictAddressFamilies": "a seccomp filter every app would inherit",
	"RestrictRealtime":        "a seccomp filter every app would inherit",
	"RestrictSUIDSGID":        "a seccomp filter every app would inherit",
	"CapabilityBoundingSet":   "policies may grant apps any capability in the daemon's bounding set",
	"AmbientCapabilities":     "the daemon runs as root; apps get capabilities from their policy",
	"User":                    "the daemon must run as root",
	"DynamicUser":             "the daemon must run as root",
	"DevicePolicy":            "a device cgroup program on every app",
	"DeviceAllow":             "a device cgroup program on every app",
	"IPAddressDeny":           "a cgroup firewall on every app",
	"IPAddressAllow":          "a cgroup firewall on every app",
	"OOMScoreAdjust":          "inherited by every app",
	"UMask":                   "inherited by every app",
	"DelegateSubgroup":        "the daemon chooses its own leaf cgroup",
}

func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(data)
	if err != nil {
		t.Fatalf("%s: %v", unitPath, err)
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("%s: no [%s] section", unitPath, s)
		}
	}

	for _, c := range []struct{ section, key, want string }{
		// The daemon manages the cgroup subtree below its own.
		{"Service", "Delegate", "yes"},
		// SIGTERM to the daemon only; it stops its apps itself.
		{"Service", "KillMode", "mixed"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "Restart", "on-failure"},
		// A TasksMax on the delegated cgroup would cap all apps together.
		{"Service", "TasksMax", "infinity"},
		// Inherited by apps, which share uids.
		{"Service", "LimitNPROC", "infinity"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "RuntimeDirectory", "pinfold"},
		{"Service", "RuntimeDirectoryMode", "0711"},
		// Records of apps that died with the daemon outlive a restart.
		{"Service", "RuntimeDirectoryPreserve", "yes"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.one(t, c.section, c.key); got != c.want {
			t.Errorf("%s: [%s] %s=%s, want %s", unitPath, c.section, c.key, got, c.want)
		}
	}

	// Type=notify and socket activation are not supported by the daemon.
	if typ := u.one(t, "Service", "Type"); typ != "exec" && typ != "simple" {
		t.Errorf("%s: Type=%s: the daemon supports exec or simple only", unitPath, typ)
	}
	for section, keys := range u {
		for key := range keys {
			if why, bad := unitForbidden[key]; bad {
				t.Errorf("%s: [%s] %s= must not be set: %s", unitPath, section, key, why)
			}
		}
	}
	entries, err := os.ReadDir("systemd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "pinfold.service" {
			t.Errorf("systemd/%s: only pinfold.service is expected (no socket activation)", e.Name())
		}
	}

	// The stop timeout covers the apps' grace period plus cleanup.
	stop, err := timeSpan(u.one(t, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("%s: TimeoutStopSec: %v", unitPath, err)
	}
	if want := policy.Default().Spec.Limits.StopTimeout + stopMargin; stop < want {
		t.Errorf("%s: TimeoutStopSec=%v, want at least %v (the default stopTimeout plus %v)", unitPath, stop, want, stopMargin)
	}

	nofile, err := strconv.Atoi(u.one(t, "Service", "LimitNOFILE"))
	if want := appsPerHost*fdsPerApp + daemonFDs; err != nil || nofile < want {
		t.Errorf("%s: LimitNOFILE=%s, want a number ≥ %d (%d apps × %d descriptors + %d)",
			unitPath, u.one(t, "Service", "LimitNOFILE"), want, appsPerHost, fdsPerApp, daemonFDs)
	}

	argv, err := commandLine(u.one(t, "Service", "ExecStart"))
	if err != nil {
		t.Fatalf("%s: ExecStart: %v", unitPath, err)
	}
	flags, err := parseDaemonArgs(argv)
	if err != nil {
		t.Fatalf("%s: ExecStart: %v", unitPath, err)
	}
	if flags["group"] == "" {
		t.Errorf("%s: ExecStart has no --group example", unitPath)
	}
	runDir := "/run/" + u.one(t, "Service", "RuntimeDirectory")
	if d := filepath.Dir(flags["socket"]); d != runDir {
		t.Errorf("%s: --socket %s is not in RuntimeDirectory %s", unitPath, flags["socket"], runDir)
	}
	if flags["state-dir"] != runDir {
		t.Errorf("%s: --state-dir %s, want RuntimeDirectory %s", unitPath, flags["state-dir"], runDir)
	}
	confDirs, err := commandLine(u.one(t, "Service", "ConfigurationDirectory"))
	if err != nil {
		t.Fatal(err)
	}
	rel, ok := strings.CutPrefix(flags["policy-dir"], "/etc/")
	if !ok || !slices.Contains(confDirs, rel) {
		t.Errorf("%s: --policy-dir %s is not one of ConfigurationDirectory=%s (below /etc)", unitPath, flags["policy-dir"], confDirs)
	}
	if err := loopback(flags["metrics-addr"]); err != nil {
		t.Errorf("%s: --metrics-addr: %v", unitPath, err)
	}
}

// TestSystemdAnalyzeVerify lets systemd check the unit where its tools are
// installed. ExecStart is pointed at a stub, since verify wants the binary
// to exist.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	if _, err := os.Stat("/bin/kill"); err != nil {
		t.Skipf("ExecReload needs /bin/kill, which this host lacks: %v", err)
	}
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "pinfold")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("ExecStart="+daemonBinary+" ")) {
		t.Fatalf("%s: ExecStart does not start with %s", unitPath, daemonBinary)
	}
	data = bytes.ReplaceAll(data, []byte("ExecStart="+daemonBinary+" "), []byte("ExecStart="+stub+" "))
	path := filepath.Join(dir, "pinfold.service")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	// verify exits 0 after warnings about unknown keys or bad values, so
	// any line about the unit is a failure. (Lines about other units on
	// this host are not the unit's business.)
	var complaints []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, path) || strings.Contains(line, "pinfold.service") {
			complaints = append(complaints, strings.TrimSpace(line))
		}
	}
	switch {
	case err != nil:
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	case len(complaints) > 0:
		t.Errorf("systemd-analyze verify %s:\n%s", unitPath, strings.Join(complaints, "\n"))
	}
}

// ---- Kubernetes ----

// The subset of the Kubernetes objects the manifests use. Decoding is
// strict: a field these types lack (a misspelling, a field at the wrong
// level) fails the test. Add fields here when the manifests need them.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type typeMeta struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type namespaceObject struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type configMapObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
}

type daemonSetObject struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		UpdateStrategy struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
				MaxSurge       any `yaml:"maxSurge"`
			} `yaml:"rollingUpdate"`
		} `yaml:"updateStrategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	AutomountServiceAccountToken  *bool             `yaml:"automountServiceAccountToken"`
	HostPID                       *bool             `yaml:"hostPID"`
	HostNetwork                   *bool             `yaml:"hostNetwork"`
	HostIPC                       *bool             `yaml:"hostIPC"`
	TerminationGracePeriodSeconds *int64            `yaml:"terminationGracePeriodSeconds"`
	Tolerations                   []toleration      `yaml:"tolerations"`
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	PriorityClassName             string            `yaml:"priorityClassName"`
	Containers                    []container       `yaml:"containers"`
	Volumes                       []volume          `yaml:"volumes"`
}

type toleration struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"`
	Value    string `yaml:"value"`
	Effect   string `yaml:"effect"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Env             []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports           []containerPort `yaml:"ports"`
	SecurityContext *struct {
		Privileged     *bool `yaml:"privileged"`
		SeccompProfile *struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type volume struct {
	Name     string `yaml:"name"`
	HostPath *struct {
		Path string `yaml:"path"`
		Type string `yaml:"type"`
	} `yaml:"hostPath"`
	EmptyDir *struct {
		Medium    string `yaml:"medium"`
		SizeLimit string `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
}

// manifests holds every object of deploy/kubernetes/*.yaml.
type manifests struct {
	namespaces []namespaceObject
	configMaps []configMapObject
	daemonSets []daemonSetObject
}

// apiVersions is the apiVersion each kind must have.
var apiVersions = map[string]string{
	"Namespace": "v1",
	"ConfigMap": "v1",
	"DaemonSet": "apps/v1",
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	var m manifests
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseBytes(data, 0)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, doc := range f.Docs {
			if doc.Body == nil {
				t.Errorf("%s: document %d is empty", file, i+1)
				continue
			}
			where := fmt.Sprintf("%s: document %d", file, i+1)
			var tm typeMeta
			if err := yaml.NodeToValue(doc.Body, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if want, ok := apiVersions[tm.Kind]; !ok {
				t.Errorf("%s: kind %q is not one this test knows", where, tm.Kind)
				continue
			} else if tm.APIVersion != want {
				t.Errorf("%s: %s has apiVersion %q, want %q", where, tm.Kind, tm.APIVersion, want)
			}
			if tm.Metadata.Name == "" {
				t.Errorf("%s: %s has no metadata.name", where, tm.Kind)
			}
			var target any
			switch tm.Kind {
			case "Namespace":
				m.namespaces = append(m.namespaces, namespaceObject{})
				target = &m.namespaces[len(m.namespaces)-1]
			case "ConfigMap":
				m.configMaps = append(m.configMaps, configMapObject{})
				target = &m.configMaps[len(m.configMaps)-1]
			case "DaemonSet":
				m.daemonSets = append(m.daemonSets, daemonSetObject{})
				target = &m.daemonSets[len(m.daemonSets)-1]
			}
			if err := yaml.NodeToValue(doc.Body, target, yaml.DisallowUnknownField()); err != nil {
				t.Fatalf("%s (%s %s): %v", where, tm.Kind, tm.Metadata.Name, err)
			}
		}
	}
	if len(m.namespaces) != 1 || len(m.configMaps) != 1 || len(m.daemonSets) != 1 {
		t.Fatalf("want one Namespace, one ConfigMap and one DaemonSet; got %d, %d, %d",
			len(m.namespaces), len(m.configMaps), len(m.daemonSets))
	}
	return m
}

// TestConfigMapPolicies checks that every policy shipped in the ConfigMap
// passes the daemon's own validation.
func TestConfigMapPolicies(t *testing.T) {
	m := loadManifests(t)
	cm := m.configMaps[0]
	if len(cm.Data) == 0 {
		t.Fatalf("ConfigMap %s holds no policy", cm.Metadata.Name)
	}
	for key, text := range cm.Data {
		p, err := policy.Parse(key, []byte(text))
		if err != nil {
			t.Errorf("ConfigMap %s, key %s: the policy does not validate:\n%v", cm.Metadata.Name, key, err)
			continue
		}
		if want := p.Metadata.Name + ".yaml"; key != want {
			t.Errorf("ConfigMap %s: key %s holds policy %q; name it %s", cm.Metadata.Name, key, p.Metadata.Name, want)
		}
	}
}

func TestDaemonSet(t *testing.T) {
	m := loadManifests(t)
	ns, cm, ds := m.namespaces[0], m.configMaps[0], m.daemonSets[0]

	// Namespace: admitted to run privileged pods.
	if ds.Metadata.Namespace != ns.Metadata.Name || cm.Metadata.Namespace != ns.Metadata.Name {
		t.Errorf("DaemonSet (%q) and ConfigMap (%q) must be in Namespace %q",
			ds.Metadata.Namespace, cm.Metadata.Namespace, ns.Metadata.Name)
	}
	if got := ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("Namespace %s: pod-security.kubernetes.io/enforce=%q, want privileged", ns.Metadata.Name, got)
	}

	// Selector: non-empty, and it selects the template.
	sel := ds.Spec.Selector.MatchLabels
	if len(sel) == 0 {
		t.Error("DaemonSet: empty selector")
	}
	for k, v := range sel {
		if got, ok := ds.Spec.Template.Metadata.Labels[k]; !ok || got != v {
			t.Errorf("DaemonSet: selector %s=%s does not match the template's labels %v", k, v, ds.Spec.Template.Metadata.Labels)
		}
	}

	// One node at a time: replacing a daemon stops its apps.
	us := ds.Spec.UpdateStrategy
	if us.Type != "RollingUpdate" || us.RollingUpdate == nil || fmt.Sprint(us.RollingUpdate.MaxUnavailable) != "1" {
		t.Errorf("DaemonSet: updateStrategy %+v, want RollingUpdate with maxUnavailable 1", us)
	} else if s := us.RollingUpdate.MaxSurge; s != nil && fmt.Sprint(s) != "0" && fmt.Sprint(s) != "0%" {
		t.Errorf("DaemonSet: maxSurge %v: two daemons on a node would both claim its socket", s)
	}

	pod := ds.Spec.Template.Spec
	for name, v := range map[string]*bool{"hostPID": pod.HostPID, "hostNetwork": pod.HostNetwork, "hostIPC": pod.HostIPC} {
		if v != nil && *v {
			t.Errorf("DaemonSet: %s: true; the daemon needs none of the host's namespaces but its cgroups", name)
		}
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("DaemonSet: automountServiceAccountToken must be false: the daemon does not use the Kubernetes API")
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl toleration) bool { return tl.Key == "" && tl.Operator == "Exists" }) {
		t.Error("DaemonSet: no toleration {operator: Exists}: the daemon would not run on tainted nodes")
	}

	// The grace period covers every shipped policy's stopTimeout.
	longest := policy.Default().Spec.Limits.StopTimeout
	for key, text := range cm.Data {
		if p, err := policy.Parse(key, []byte(text)); err == nil {
			longest = max(longest, p.Spec.Limits.StopTimeout)
		}
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < longest+stopMargin {
		t.Errorf("DaemonSet: terminationGracePeriodSeconds must be set to at least %v (the longest stopTimeout plus %v)", longest+stopMargin, stopMargin)
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("DaemonSet: %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The image is a placeholder naming no registry host.
	if first, _, hasSlash := strings.Cut(c.Image, "/"); c.Image == "" || hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		t.Errorf("DaemonSet: image %q names a registry host; ship a placeholder such as pinfold:latest", c.Image)
	}

	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("DaemonSet: the container must be privileged (namespaces, mounts, cgroupfs, any capability a policy grants)")
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != "Unconfined" {
		t.Error("DaemonSet: seccompProfile must be Unconfined: apps would inherit a runtime filter")
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("DaemonSet: set memory requests and limits (the limit bounds the daemon and all its apps): %+v", c.Resources)
	}

	argv := append(slices.Clone(c.Command), c.Args...)
	flags, err := parseDaemonArgs(argv)
	if err != nil {
		t.Fatalf("DaemonSet: command: %v", err)
	}

	// Volumes: unique, each mounted, each mount backed.
	vols := map[string]volume{}
	for _, v := range pod.Volumes {
		if _, dup := vols[v.Name]; dup {
			t.Errorf("DaemonSet: volume %q defined twice", v.Name)
		}
		vols[v.Name] = v
		if hp := v.HostPath; hp != nil && (hp.Path == "/sys/fs/cgroup" || strings.HasPrefix(hp.Path, "/sys/fs/cgroup/")) {
			t.Errorf("DaemonSet: volume %q mounts the host's %s: over the runtime's own cgroup mount it no longer matches "+
				"/proc/self/cgroup, and app cgroups would land outside the pod's cgroup", v.Name, hp.Path)
		}
	}
	mounted := map[string]bool{}
	mountOf := func(path string) (mountPath string, v volume, readOnly, ok bool) {
		for _, vm := range c.VolumeMounts {
			if path == vm.MountPath || strings.HasPrefix(path, vm.MountPath+"/") {
				if len(vm.MountPath) > len(mountPath) {
					mountPath, v, readOnly, ok = vm.MountPath, vols[vm.Name], vm.ReadOnly, true
				}
			}
		}
		return
	}
	for _, vm := range c.VolumeMounts {
		if _, ok := vols[vm.Name]; !ok {
			t.Errorf("DaemonSet: volumeMount %s refers to no volume %q", vm.MountPath, vm.Name)
		}
		mounted[vm.Name] = true
		if vm.MountPath == "/sys/fs/cgroup" || strings.HasPrefix(vm.MountPath, "/sys/fs/cgroup/") {
			t.Errorf("DaemonSet: a volume is mounted at %s, hiding the runtime's cgroup mount", vm.MountPath)
		}
	}
	for name := range vols {
		if !mounted[name] {
			t.Errorf("DaemonSet: volume %q is never mounted", name)
		}
	}

	// The socket is in a host directory of the same path, so that clients
	// on the node use the usual address.
	sockDir := filepath.Dir(flags["socket"])
	if mp, v, _, ok := mountOf(flags["socket"]); !ok || mp != sockDir || v.HostPath == nil || v.HostPath.Path != sockDir || v.HostPath.Type != "DirectoryOrCreate" {
		t.Errorf("DaemonSet: --socket %s: its directory must be a hostPath volume of the same path (type DirectoryOrCreate) mounted there", flags["socket"])
	}
	// The state lives with the pod, in a directory pinfold creates itself
	// (the kubelet makes an emptyDir's root world-writable).
	if mp, v, ro, ok := mountOf(flags["state-dir"]); !ok || v.EmptyDir == nil || ro || mp == flags["state-dir"] {
		t.Errorf("DaemonSet: --state-dir %s must be a directory below a writable emptyDir mount", flags["state-dir"])
	}
	// The policy directory is the ConfigMap, read-only.
	if mp, v, ro, ok := mountOf(flags["policy-dir"]); !ok || mp != flags["policy-dir"] || v.ConfigMap == nil || v.ConfigMap.Name != cm.Metadata.Name || !ro {
		t.Errorf("DaemonSet: --policy-dir %s must be ConfigMap %s mounted read-only", flags["policy-dir"], cm.Metadata.Name)
	}

	// Probes ask the daemon itself, over its socket.
	wantProbe := []string{daemonBinary, "--host", "unix://" + flags["socket"], "info"}
	for name, p := range map[string]*probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
		if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, wantProbe) {
			t.Errorf("DaemonSet: %s must exec %q", name, wantProbe)
			continue
		}
		if p.TimeoutSeconds < 2 {
			t.Errorf("DaemonSet: %s: timeoutSeconds %d is too short for an exec", name, p.TimeoutSeconds)
		}
	}
	if sp := c.StartupProbe; sp != nil && sp.InitialDelaySeconds < 1 {
		t.Error("DaemonSet: startupProbe needs an initialDelaySeconds: a probe exec'd during the daemon's cgroup setup makes it fail (cgroup v2)")
	}

	for _, e := range c.Env {
		if e.Name == "PINFOLD_HOST" && e.Value != "unix://"+flags["socket"] {
			t.Errorf("DaemonSet: PINFOLD_HOST=%s, want unix://%s", e.Value, flags["socket"])
		}
	}
	if err := loopback(flags["metrics-addr"]); err != nil {
		t.Errorf("DaemonSet: --metrics-addr: %v", err)
	}
}

// TestSameLayout checks that the unit and the DaemonSet put the socket and
// the policies where docs/operating.md and clients expect them.
func TestSameLayout(t *testing.T) {
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(data)
	if err != nil {
		t.Fatal(err)
	}
	argv, err := commandLine(u.one(t, "Service", "ExecStart"))
	if err != nil {
		t.Fatal(err)
	}
	unitFlags, err := parseDaemonArgs(argv)
	if err != nil {
		t.Fatal(err)
	}
	c := loadManifests(t).daemonSets[0].Spec.Template.Spec.Containers[0]
	dsFlags, err := parseDaemonArgs(append(slices.Clone(c.Command), c.Args...))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"socket", "policy-dir"} {
		if unitFlags[f] != daemonDefaults[f] || dsFlags[f] != daemonDefaults[f] {
			t.Errorf("--%s: unit %s, DaemonSet %s; both should be the default %s", f, unitFlags[f], dsFlags[f], daemonDefaults[f])
		}
	}
}
