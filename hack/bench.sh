#!/usr/bin/env bash
# Start-to-exit latency of `pinfold run -- /bin/true` beside its anchors:
# a bare /bin/true, unshare(1) with the same namespaces, and bubblewrap with a
# read-only rootfs like pinfold's. Prints p50/p90/p99 and pinfold's ratio to each.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# EPOCHREALTIME and printf use the locale's decimal point; pin it.
export LC_ALL=C

usage() {
	cat <<EOF
usage: $(basename "$0") [-n RUNS] [--quick] [--json FILE]

Measures the wall-clock time from spawn to exit of /bin/true run five ways,
one after another in this one run, and prints p50/p90/p99 in milliseconds and
pinfold's p50 divided by each anchor's p50.

  -n RUNS      timed runs per tool (default 300; at least 3)
  --quick      50 runs and 3 warmups per tool, for a fast look
  --json FILE  also write the results and machine facts to FILE as JSON

Uses hyperfine -N when it is installed, else a bash loop timed with
EPOCHREALTIME. Runs hack/install-deps.sh --bench (as root) to install
hyperfine and bubblewrap when they are missing. Uses bin/pinfold, building it
with 'make build' when it is missing. Needs root for the unshare and pinfold
rows.

Environment: PINFOLD=path measures that binary instead of bin/pinfold;
BENCH_TIMER=loop uses the bash loop even when hyperfine is installed.
EOF
}

runs=""
warmup=10
quick=0
json_out=""
while (($# > 0)); do
	case "$1" in
	-n)
		(($# >= 2)) || die "-n needs a number of runs"
		runs="$2"
		shift
		;;
	--quick) quick=1 ;;
	--json)
		(($# >= 2)) || die "--json needs a file name"
		json_out="$2"
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
	shift
done
if ((quick)); then
	runs="${runs:-50}"
	warmup=3
fi
runs="${runs:-300}"
if ! [[ "$runs" =~ ^[0-9]+$ ]] || ((runs < 3)); then
	die "-n wants a whole number of runs, 3 or more (got '$runs')"
fi
if [[ -n "$json_out" ]]; then
	json_dir="$(dirname "$json_out")"
	[[ -d "$json_dir" && -w "$json_dir" ]] || die "--json $json_out: directory $json_dir does not exist or is not writable"
fi

have python3 || die "python3 is needed to compute percentiles: run hack/install-deps.sh"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/pinfold-bench.XXXXXX")"
cleanup() { rm -rf -- "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools

if ! have hyperfine || ! have bwrap; then
	if is_root; then
		log "hyperfine or bubblewrap is missing: running hack/install-deps.sh --bench"
		"$REPO_ROOT/hack/install-deps.sh" --bench >&2 || warn "install-deps.sh --bench failed; going on without what is missing"
	else
		warn "hyperfine or bubblewrap is missing and installing needs root: run 'sudo hack/install-deps.sh --bench'"
	fi
fi

timer="loop"
if [[ "${BENCH_TIMER:-}" != loop ]] && have hyperfine && hyperfine --help 2>/dev/null | grep -q -- '--shell=none'; then
	timer="hyperfine"
fi
if [[ "$timer" == loop && -z "${EPOCHREALTIME:-}" ]]; then
	timer="loop-date" # bash < 5: each sample also pays for two date(1) forks
fi

pinfold="${PINFOLD:-$REPO_ROOT/bin/pinfold}"
pinfold_note=""
if [[ -n "${PINFOLD:-}" && ! -x "$pinfold" ]]; then
	pinfold_note="PINFOLD=$pinfold is not an executable file, so pinfold was not measured"
elif [[ ! -x "$pinfold" ]]; then
	if [[ -f "$REPO_ROOT/Makefile" ]] && grep -qE '^build:' "$REPO_ROOT/Makefile"; then
		log "$pinfold is missing: running 'make build'"
		if ! make -C "$REPO_ROOT" build >&2; then
			pinfold_note="'make build' failed (see above), so pinfold was not measured"
		elif [[ ! -x "$pinfold" ]]; then
			pinfold_note="'make build' did not produce $pinfold, so pinfold was not measured"
		fi
	else
		pinfold_note="$pinfold does not exist and there is no 'make build' target yet: build pinfold first; only the anchors were measured"
	fi
fi
if ! is_root; then
	warn "not running as root: the unshare and pinfold rows will likely fail"
fi

# ---------------------------------------------------------------- machine

cpu_model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
case "$(cgroup_mode)" in
v2) cgroups="v2 (unified)" ;;
hybrid) cgroups="hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)" ;;
v1) cgroups="v1" ;;
*) cgroups="not mounted" ;;
esac
commit="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ "$commit" != unknown ]] && ! git -C "$REPO_ROOT" diff-index --quiet HEAD -- 2>/dev/null; then
	commit="$commit+dirty"
fi
pinfold_version="not built"
if [[ -x "$pinfold" ]]; then
	pinfold_version="$({ timeout 5 "$pinfold" version 2>/dev/null || timeout 5 "$pinfold" --version 2>/dev/null; } | head -n1 || true)"
	pinfold_version="${pinfold_version:-unknown (neither 'version' nor '--version' answered)}"
fi
hyperfine_version=""
if [[ "$timer" == hyperfine ]]; then
	hyperfine_version="$(hyperfine --version 2>/dev/null | head -n1)"
fi

# ---------------------------------------------------------------- commands

# A bubblewrap sandbox shaped like pinfold's default rootfs: read-only /usr,
# the host's merged-/usr symlinks (or read-only binds), fresh /proc, minimal
# /dev, tmpfs /tmp and /dev/shm, and a read-only root.
bwrap_cmd=(bwrap --unshare-all --die-with-parent --ro-bind /usr /usr)
for d in bin sbin lib lib32 lib64 libx32; do
	if [[ -L "/$d" ]]; then
		bwrap_cmd+=(--symlink "$(readlink "/$d")" "/$d")
	elif [[ -d "/$d" ]]; then
		bwrap_cmd+=(--ro-bind "/$d" "/$d")
	fi
done
bwrap_cmd+=(--proc /proc --dev /dev --tmpfs /tmp --tmpfs /dev/shm --dir /etc)
if [[ -f /etc/ld.so.cache ]]; then
	bwrap_cmd+=(--ro-bind /etc/ld.so.cache /etc/ld.so.cache)
fi
bwrap_cmd+=(--remount-ro / --chdir /tmp /bin/true)

# quote joins its arguments into one string that the shell (and hyperfine -N)
# splits back into the same words.
quote() {
	local out="" arg
	for arg in "$@"; do
		out+="${out:+ }$(printf '%q' "$arg")"
	done
	printf '%s\n' "$out"
}

names=(true unshare bwrap pinfold)
declare -A label cmd why
label[true]="/bin/true"
label[unshare]="unshare -fpmuinC --mount-proc"
label[bwrap]="bwrap --unshare-all, ro rootfs"
label[pinfold]="pinfold run (default policy)"
cmd[true]="$(quote /bin/true)"
cmd[unshare]="$(quote unshare -fpmuinC --mount-proc /bin/true)"
cmd[bwrap]="$(quote "${bwrap_cmd[@]}")"
cmd[pinfold]="$(quote "$pinfold" run -- /bin/true)"
have unshare || why[unshare]="unshare(1) is not installed"
have bwrap || why[bwrap]="bwrap is not installed (hack/install-deps.sh --bench)"
[[ -n "$pinfold_note" ]] && why[pinfold]="$pinfold_note"

# ---------------------------------------------------------------- measure

# leak_snapshot records what a sandbox could leave behind: mounts in our
# mount namespace, live processes of the measured programs (a leaked one is
# reparented, so it is found by name; zombies waiting for their new parent to
# reap them are not leaks), and cgroup directories.
leak_snapshot() {
	wc -l </proc/self/mountinfo >"$1.mounts"
	ps -eo pid=,stat=,comm= |
		awk '$2 !~ /^Z/ && $3 ~ /^(true|unshare|bwrap|pinfold|pinfold-init)$/ { print $1 " " $3 }' |
		sort >"$1.procs"
	{ find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d 2>/dev/null || true; } | sort >"$1.cgroups"
}

# measure_loop NAME: time RUNS runs of cmd[NAME] with bash; one "start end"
# pair per line (EPOCHREALTIME seconds, or date(1) nanoseconds).
measure_loop() {
	local name="$1" i rc t0 t1
	local -a argv
	eval "argv=(${cmd[$name]})"
	for ((i = 0; i < warmup; i++)); do
		"${argv[@]}" >/dev/null 2>&1 || true
	done
	: >"$tmp/$name.times"
	for ((i = 0; i < runs; i++)); do
		rc=0
		if [[ "$timer" == loop ]]; then
			t0="$EPOCHREALTIME"
			"${argv[@]}" >/dev/null 2>&1 || rc=$?
			t1="$EPOCHREALTIME"
		else
			t0="$(date +%s%N)"
			"${argv[@]}" >/dev/null 2>&1 || rc=$?
			t1="$(date +%s%N)"
		fi
		if ((rc != 0)); then
			echo "run $((i + 1)) exited with status $rc" >"$tmp/$name.err"
			return 1
		fi
		printf '%s %s\n' "$t0" "$t1" >>"$tmp/$name.times"
	done
}

leak_snapshot "$tmp/before"
manifest="$tmp/manifest.tsv"
: >"$manifest"
for name in "${names[@]}"; do
	status=ok
	note="${why[$name]:-}"
	data=""
	if [[ -n "$note" ]]; then
		status=skipped
	else
		# One probe run first, so a broken tool gets its own error message.
		probe_rc=0
		eval "argv=(${cmd[$name]})"
		timeout 30 "${argv[@]}" >"$tmp/$name.probe" 2>&1 </dev/null || probe_rc=$?
		if ((probe_rc != 0)); then
			status=failed
			note="exit status $probe_rc: $(tr '\n' ' ' <"$tmp/$name.probe" | cut -c1-200)"
		fi
	fi
	if [[ "$status" == ok ]]; then
		log "measuring ${label[$name]} ($runs runs, $warmup warmup)"
		if [[ "$timer" == hyperfine ]]; then
			data="$tmp/$name.json"
			if ! hyperfine -N --style none --warmup "$warmup" --runs "$runs" \
				--export-json "$data" "${cmd[$name]}" >"$tmp/$name.hf" 2>&1 </dev/null; then
				status=failed
				note="hyperfine: $(grep -v '^ *$' "$tmp/$name.hf" | tail -n2 | tr '\n' ' ' | cut -c1-200)"
			fi
		else
			data="$tmp/$name.times"
			if ! measure_loop "$name" </dev/null; then
				status=failed
				note="$(cat "$tmp/$name.err")"
			fi
		fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${label[$name]}" "$status" "$data" "$note" "${cmd[$name]}" >>"$manifest"
done
leak_snapshot "$tmp/after"
if [[ -n "$(comm -13 "$tmp/before.procs" "$tmp/after.procs")" ]]; then
	sleep 2 # a sandbox may still be tearing down; look again
	leak_snapshot "$tmp/after"
fi

leaks=()
if [[ "$(cat "$tmp/before.mounts")" != "$(cat "$tmp/after.mounts")" ]]; then
	leaks+=("mount count changed: $(cat "$tmp/before.mounts") -> $(cat "$tmp/after.mounts")")
fi
new_procs="$(comm -13 "$tmp/before.procs" "$tmp/after.procs")"
if [[ -n "$new_procs" ]]; then
	leaks+=("processes still running (pid name): $(head -n5 <<<"$new_procs" | tr '\n' ' ')")
fi
new_cgroups="$(comm -13 "$tmp/before.cgroups" "$tmp/after.cgroups")"
if [[ -n "$new_cgroups" ]]; then
	leaks+=("cgroup directories appeared (maybe from other processes): $(head -n3 <<<"$new_cgroups" | tr '\n' ' ')")
fi

# ---------------------------------------------------------------- report

case "$timer" in
hyperfine) method="$hyperfine_version -N (no shell), $warmup warmup + $runs timed runs per tool" ;;
loop) method="bash loop timed with EPOCHREALTIME (hyperfine not used), $warmup warmup + $runs timed runs per tool" ;;
*) method="bash loop timed with date +%s%N (includes two date forks per run), $warmup warmup + $runs timed runs per tool" ;;
esac

BENCH_KERNEL="$(uname -r)"
BENCH_ARCH="$(uname -m)"
BENCH_CPUS="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
BENCH_USER="$(id -un 2>/dev/null || id -u)"
export BENCH_KERNEL BENCH_ARCH BENCH_CPUS BENCH_USER
export BENCH_CPU_MODEL="${cpu_model:-unknown}"
export BENCH_CGROUPS="$cgroups"
export BENCH_COMMIT="$commit"
export BENCH_PINFOLD="$pinfold"
export BENCH_PINFOLD_VERSION="$pinfold_version"
export BENCH_METHOD="$method"
export BENCH_TIMER="$timer"
export BENCH_RUNS="$runs"
export BENCH_WARMUP="$warmup"
BENCH_LEAKS="$(printf '%s\n' "${leaks[@]+"${leaks[@]}"}")"
export BENCH_LEAKS

python3 - "$manifest" "$json_out" <<'PY'
"""Turn the raw samples into percentiles, a table and optional JSON."""
import datetime
import json
import os
import sys

manifest, json_out = sys.argv[1], sys.argv[2]
env = os.environ


def percentile(sorted_ms, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    k = (len(sorted_ms) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (k - lo)


def samples_ms(path, timer):
    if timer == "hyperfine":
        with open(path) as f:
            return [t * 1000 for t in json.load(f)["results"][0]["times"]]
    out = []
    with open(path) as f:
        for line in f:
            a, b = line.split()
            if "." in a:  # EPOCHREALTIME: seconds with microseconds
                out.append((float(b) - float(a)) * 1000)
            else:  # date +%s%N: nanoseconds
                out.append((int(b) - int(a)) / 1e6)
    return out


rows = []
with open(manifest) as f:
    for line in f:
        name, label, status, data, note, command = line.rstrip("\n").split("\t")
        row = {"name": name, "label": label, "command": command,
               "status": status, "note": note}
        if status == "ok":
            ms = sorted(samples_ms(data, env["BENCH_TIMER"]))
            row.update({
                "runs": len(ms),
                "p50_ms": percentile(ms, 50),
                "p90_ms": percentile(ms, 90),
                "p99_ms": percentile(ms, 99),
                "mean_ms": sum(ms) / len(ms),
                "min_ms": ms[0],
                "max_ms": ms[-1],
            })
        rows.append(row)

pinfold = next((r for r in rows if r["name"] == "pinfold"), None)
pin_p50 = pinfold.get("p50_ms") if pinfold else None
for r in rows:
    if pin_p50 and r["name"] != "pinfold" and r.get("p50_ms"):
        r["pinfold_p50_ratio"] = pin_p50 / r["p50_ms"]

print()
print("pinfold start-to-exit latency: /bin/true, spawn to exit, wall clock")
facts = [
    ("kernel", f"{env['BENCH_KERNEL']} ({env['BENCH_ARCH']})"),
    ("cpus", f"{env['BENCH_CPUS']} x {env['BENCH_CPU_MODEL']}"),
    ("cgroups", env["BENCH_CGROUPS"]),
    ("pinfold", f"{env['BENCH_PINFOLD_VERSION']}; tree {env['BENCH_COMMIT']}"),
    ("method", env["BENCH_METHOD"]),
    ("user", env["BENCH_USER"]),
]
for k, v in facts:
    print(f"  {k:<9}{v}")
print()
head = f"{'tool':<32}{'runs':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}   pinfold p50 / tool p50"
print(head)
print("-" * len(head))
for r in rows:
    if r["status"] != "ok":
        print(f"{r['label']:<32}{'-':>6}{'-':>10}{'-':>10}{'-':>10}   {r['status'].upper()}")
        continue
    ratio = r.get("pinfold_p50_ratio")
    rtext = f"{ratio:.2f}x" if ratio else ("-" if r["name"] == "pinfold" else "n/a")
    print(f"{r['label']:<32}{r['runs']:>6}{r['p50_ms']:>10.2f}{r['p90_ms']:>10.2f}"
          f"{r['p99_ms']:>10.2f}   {rtext}")
print()
notes = [r for r in rows if r["note"]]
for r in notes:
    print(f"note: {r['label']}: {r['status']}: {r['note']}")
leaks = [l for l in env.get("BENCH_LEAKS", "").splitlines() if l]
print("leftovers: " + ("; ".join(leaks) if leaks else
                       "none (mounts, processes, cgroup directories as before)"))
print()
print("commands:")
for r in rows:
    print(f"  {r['label']}:\n    {r['command']}")

if json_out:
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "kernel": env["BENCH_KERNEL"], "arch": env["BENCH_ARCH"],
            "cpus": int(env["BENCH_CPUS"]), "cpu_model": env["BENCH_CPU_MODEL"],
            "cgroups": env["BENCH_CGROUPS"],
        },
        "pinfold": {"path": env["BENCH_PINFOLD"],
                    "version": env["BENCH_PINFOLD_VERSION"],
                    "commit": env["BENCH_COMMIT"]},
        "method": {"timer": env["BENCH_TIMER"], "description": env["BENCH_METHOD"],
                   "runs": int(env["BENCH_RUNS"]), "warmup": int(env["BENCH_WARMUP"]),
                   "user": env["BENCH_USER"]},
        "results": rows,
        "leftovers": leaks,
    }
    tmp_out = json_out + ".tmp"
    with open(tmp_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp_out, json_out)
    print(f"\nwrote {json_out}")
PY
