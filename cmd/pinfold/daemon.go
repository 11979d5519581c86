package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/pinfold/pinfold/internal/daemon"
	"github.com/pinfold/pinfold/sandbox"
)

const daemonUsage = `Usage: pinfold daemon [flags]

Runs the pinfold supervisor as a service: the API on a unix socket, the
policy directory, app logs, events and metrics. Apps do not survive a daemon
restart; the next start releases whatever they held (docs/operating.md).
SIGHUP reloads the policy directory; SIGTERM or SIGINT stops every app with
its grace period and exits 0; a second one kills them at once.

Flags:
`

// daemonConfig is the --config file: the same settings as the flags, which
// override it.
type daemonConfig struct {
	Socket      string `yaml:"socket"`
	StateDir    string `yaml:"stateDir"`
	PolicyDir   string `yaml:"policyDir"`
	MetricsAddr string `yaml:"metricsAddr"`
	Group       string `yaml:"group"`
	LogFormat   string `yaml:"logFormat"`
	Events      int    `yaml:"events"`
	// The IPC broker's limits over all apps together.
	IPCMaxObjects int   `yaml:"ipcMaxObjects"`
	IPCMaxBytes   int64 `yaml:"ipcMaxBytes"`
}

func daemonCmd(args []string) error {
	cfg := daemonConfig{
		Socket:      daemon.DefaultSocket,
		StateDir:    sandbox.DefaultStateDir,
		PolicyDir:   daemon.DefaultPolicyDir,
		MetricsAddr: daemon.DefaultMetricsAddr,
		LogFormat:   "text",
		Events:      daemon.DefaultEvents,
	}
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", "", "YAML `FILE` with socket, stateDir, policyDir, metricsAddr, group, logFormat, events, ipcMaxObjects, ipcMaxBytes (flags override it)")
	fs.StringVar(&cfg.Socket, "socket", cfg.Socket, "unix socket `PATH` of the API")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "state `DIR` (records, seccomp cache, logs, pid file)")
	fs.StringVar(&cfg.PolicyDir, "policy-dir", cfg.PolicyDir, "policy `DIR` (*.yaml)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "loopback `ADDR` of the Prometheus endpoint (empty: none)")
	fs.StringVar(&cfg.Group, "group", cfg.Group, "`GROUP` whose members may use the API besides root")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "`FORMAT` of the daemon's log: text or json")
	fs.IntVar(&cfg.Events, "events", cfg.Events, "`N` events kept for replay")
	fs.IntVar(&cfg.IPCMaxObjects, "ipc-max-objects", cfg.IPCMaxObjects, "`N` IPC objects all apps together may have at once (0: 4096)")
	fs.Int64Var(&cfg.IPCMaxBytes, "ipc-max-bytes", cfg.IPCMaxBytes, "`BYTES` of IPC objects all apps together may have at once, on top of each policy's quota (0: no such limit)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Print(daemonUsage)
			fs.PrintDefaults()
			return nil
		}
		return &exitError{code: exitUsage, msg: "daemon: " + err.Error() + " (see pinfold daemon -h)"}
	}
	if fs.NArg() > 0 {
		return &exitError{code: exitUsage, msg: "daemon: unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	if *configFile != "" {
		if err := loadDaemonConfig(*configFile, &cfg, fs); err != nil {
			return err
		}
	}
	if cfg.IPCMaxObjects < 0 || cfg.IPCMaxBytes < 0 {
		return &exitError{code: exitUsage, msg: "daemon: --ipc-max-objects and --ipc-max-bytes must be 0 (the default) or more"}
	}
	var h slog.Handler
	switch cfg.LogFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, nil)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, nil)
	default:
		return &exitError{code: exitUsage, msg: fmt.Sprintf("daemon: --log-format %q: use text or json", cfg.LogFormat)}
	}
	log := slog.New(h)

	// Subscribe first: a signal during start-up must not kill the daemon
	// half-way (its apps would be released by the next start, but a
	// clean stop is better).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	d, err := daemon.New(daemon.Config{
		Socket:        cfg.Socket,
		StateDir:      cfg.StateDir,
		PolicyDir:     cfg.PolicyDir,
		MetricsAddr:   cfg.MetricsAddr,
		Group:         cfg.Group,
		Events:        cfg.Events,
		Logger:        log,
		IPCMaxObjects: cfg.IPCMaxObjects,
		IPCMaxBytes:   cfg.IPCMaxBytes,
	})
	if err != nil {
		return err
	}
	f := sandbox.ProbeFeatures(d.Supervisor())
	log.Info("pinfold daemon starting", "version", daemon.Version(), "kernel", f.Kernel,
		"cgroup", f.CgroupMode, "controllers", strings.Join(f.CgroupControllers, ","),
		"seccompUserNotify", f.SeccompUserNotify, "landlockABI", f.LandlockABI,
		"userNamespaces", f.UserNamespaces, "pidfd", f.Pidfd)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()

	for {
		select {
		case err := <-served:
			if err != nil {
				sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
				_ = d.Shutdown(sctx, true)
				scancel()
				return err
			}
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				rep := d.Reload()
				log.Info("policies reloaded", "loaded", len(rep.Loaded), "rejected", len(rep.Rejected), "removed", len(rep.Removed))
				continue
			}
			log.Info("stopping: ending every app with its grace period (signal again to kill them at once)", "signal", sig.String())
			return shutdown(d, sigs, log, cancel)
		}
	}
}

// shutdown stops the apps gracefully unless a second signal asks for an
// immediate kill; either way everything is released before it returns.
func shutdown(d *daemon.Daemon, sigs <-chan os.Signal, log *slog.Logger, cancel func()) error {
	done := make(chan error, 1)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { done <- d.Shutdown(ctx, false) }()
	for {
		select {
		case err := <-done:
			cancel()
			if err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			log.Info("killing every app now", "signal", sig.String())
			stop()
			kctx, kcancel := context.WithTimeout(context.Background(), time.Minute)
			err := d.Shutdown(kctx, true)
			kcancel()
			<-done
			cancel()
			if err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		}
	}
}

// loadDaemonConfig reads --config; flags given on the command line win.
func loadDaemonConfig(path string, cfg *daemonConfig, fs *flag.FlagSet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var fileCfg daemonConfig
	if err := yaml.UnmarshalWithOptions(data, &fileCfg, yaml.Strict()); err != nil {
		return fmt.Errorf("--config %s: %s", path, yaml.FormatError(err, false, true))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	apply := func(flagName, v string, dst *string) {
		if v != "" && !set[flagName] {
			*dst = v
		}
	}
	apply("socket", fileCfg.Socket, &cfg.Socket)
	apply("state-dir", fileCfg.StateDir, &cfg.StateDir)
	apply("policy-dir", fileCfg.PolicyDir, &cfg.PolicyDir)
	apply("metrics-addr", fileCfg.MetricsAddr, &cfg.MetricsAddr)
	apply("group", fileCfg.Group, &cfg.Group)
	apply("log-format", fileCfg.LogFormat, &cfg.LogFormat)
	if fileCfg.Events > 0 && !set["events"] {
		cfg.Events = fileCfg.Events
	}
	if fileCfg.IPCMaxObjects != 0 && !set["ipc-max-objects"] {
		cfg.IPCMaxObjects = fileCfg.IPCMaxObjects
	}
	if fileCfg.IPCMaxBytes != 0 && !set["ipc-max-bytes"] {
		cfg.IPCMaxBytes = fileCfg.IPCMaxBytes
	}
	return nil
}
