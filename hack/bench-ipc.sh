#!/usr/bin/env bash
# make bench-ipc: pinfold's IPC channels and syscall round trips beside raw
# kernel baselines measured in the same run (hack/ipcbench), with the same
# CPU placement for both: same CPU, across CPUs, and unpinned. Prints one
# table (name, pinfold, raw, ratio, target, pass/miss). Checks afterwards
# that nothing was left behind: mounts, cgroup directories, processes,
# temporary directories.
set -euo pipefail

# lib.sh is checked where it is given too (make lint runs shellcheck on
# hack/*.sh); on its own this file does not ask shellcheck to follow it.
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") [--quick] [--json FILE] [--no-build] [-- IPCBENCH-FLAGS...]

Builds bin/ipcbench (and, with make build, bin/pinfold-init beside it) and
runs it: three plain worker processes and three sandboxed apps of the
default policy, measured back to back in every round (see
docs/benchmarks.md, "IPC"). Needs root. Takes about 2 minutes; --quick
about 40 s.

  --quick      3 rounds and smaller sizes (ipcbench -quick)
  --json FILE  also write the full report, per-round values included, as JSON
  --no-build   use bin/ipcbench and bin/pinfold-init as they are

Flags after -- go to ipcbench (bin/ipcbench -h lists them), e.g.
  -- -placements same -tests rtt-nop,rtt-fd -rounds 15
EOF
}

quick=0
json_out=""
build=1
args=()
while (($# > 0)); do
	case "$1" in
	--quick) quick=1 ;;
	--json)
		(($# >= 2)) || die "--json needs a file name"
		json_out="$2"
		shift
		;;
	--no-build) build=0 ;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		args+=("$@")
		break
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
	shift
done

is_root || die "ipcbench starts sandboxes (namespaces, cgroups, seccomp): run it as root"
if ((quick)); then
	args=(-quick "${args[@]+"${args[@]}"}")
fi
if [[ -n "$json_out" ]]; then
	json_dir="$(dirname "$json_out")"
	[[ -d "$json_dir" && -w "$json_dir" ]] || die "--json $json_out: directory $json_dir does not exist or is not writable"
	args+=(-json "$json_out")
fi

cd "$REPO_ROOT"
ipcbench="$REPO_ROOT/bin/ipcbench"
if ((build)); then
	gobin="$(find_go)"
	[[ -n "$gobin" ]] || die "no go command found: run hack/install-deps.sh"
	# pinfold-init is the sandboxes' init stage; without it beside
	# ipcbench, ipcbench plays that role itself (slower starts, same data
	# path).
	make build >/dev/null
	log "building $ipcbench"
	"$gobin" build -trimpath -o "$ipcbench" ./hack/ipcbench
fi
[[ -x "$ipcbench" ]] || die "$ipcbench is missing: run without --no-build"

# The numbers are only as good as the machine is quiet: every row is a
# ratio of two measurements taken seconds apart, and other work on the two
# CPUs moves both, but not always equally.
pressure="$(awk '/^some/ { sub("avg10=", "", $2); print $2 }' /proc/pressure/cpu 2>/dev/null || true)"
if [[ -n "$pressure" ]] && awk -v p="$pressure" 'BEGIN { exit !(p > 5) }'; then
	warn "the CPUs are busy (PSI cpu some avg10=$pressure%): other work competes with the benchmark and makes its numbers noisy"
fi

# leak_snapshot records what a run could leave behind.
leak_snapshot() {
	wc -l </proc/self/mountinfo >"$1.mounts"
	{ find /sys/fs/cgroup -maxdepth 6 -type d -name 'pinfold-ipcbench-*' 2>/dev/null || true; } | sort >"$1.cgroups"
	{ find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'pinfold-ipcbench-*' 2>/dev/null || true; } | sort >"$1.tmp"
	ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 == "ipcbench" { print $1 }' | sort >"$1.procs"
}

snap="$(mktemp -d "${TMPDIR:-/tmp}/bench-ipc.XXXXXX")"
trap 'rm -rf -- "$snap"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

leak_snapshot "$snap/before"
rc=0
"$ipcbench" "${args[@]+"${args[@]}"}" || rc=$?
leak_snapshot "$snap/after"

leaks=()
if ! cmp -s "$snap/before.mounts" "$snap/after.mounts"; then
	leaks+=("mount count changed: $(cat "$snap/before.mounts") -> $(cat "$snap/after.mounts")")
fi
for what in cgroups tmp procs; do
	new="$(comm -13 "$snap/before.$what" "$snap/after.$what")"
	if [[ -n "$new" ]]; then
		leaks+=("$what left behind: $(head -n5 <<<"$new" | tr '\n' ' ')")
	fi
done
if ((${#leaks[@]} > 0)); then
	for l in "${leaks[@]}"; do
		warn "$l"
	done
	((rc != 0)) || rc=1
else
	log "leftovers: none (mounts, cgroup directories, temporary directories, processes as before)"
fi
exit "$rc"
