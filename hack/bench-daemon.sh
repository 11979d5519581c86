#!/usr/bin/env bash
# make bench (second part): the daemon's numbers, in one run.
#   1. API overhead: `pinfold --host ... run -- /bin/true` beside embedded `pinfold run`
#   2. sustained sandboxes/second through the daemon (hack/loadgen), 1..8 clients
#   3. the daemon's resident memory with 1000 idle apps
#   4. the cost of emitting an event (Go benchmark)
# It starts its own daemon on temporary paths and checks that nothing is
# left behind afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source-path=SCRIPTDIR source=lib.sh
source hack/lib.sh

runs=200
duration=10s
idle=1000
while (($# > 0)); do
	case "$1" in
	--quick)
		runs=50
		duration=3s
		idle=100
		;;
	*) die "usage: $prog [--quick]" ;;
	esac
	shift
done

[[ $(id -u) -eq 0 ]] || die "the daemon needs root"
make build >/dev/null
go build -o bin/loadgen ./hack/loadgen
have hyperfine || hack/install-deps.sh --bench

tmp=$(mktemp -d /tmp/pinfold-bench-daemon.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/policies"
sock="$tmp/pinfold.sock"
daemon_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid"
		wait "$daemon_pid" || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

bin/pinfold daemon --socket "$sock" --state-dir "$tmp/state" --policy-dir "$tmp/policies" \
	--metrics-addr "" 2>"$tmp/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [[ -S "$sock" ]] && break; sleep 0.05; done
[[ -S "$sock" ]] || { cat "$tmp/daemon.log" >&2; die "the daemon did not start"; }
host="unix://$sock"

echo "pinfold daemon benchmarks"
echo "  kernel   $(uname -r), $(nproc) CPUs"
echo "  pinfold  $(bin/pinfold version | head -1)"
echo

echo "== 1. API overhead: pinfold --host ... run -- /bin/true vs embedded ($runs runs each)"
hyperfine -N --warmup 10 -r "$runs" --export-json "$tmp/api.json" \
	-n embedded "bin/pinfold run --state-dir $tmp/embedded -- /bin/true" \
	-n daemon "bin/pinfold --host $host run -- /bin/true" >/dev/null
python3 - "$tmp/api.json" <<'PY'
import json, statistics, sys
r = {x["command"]: sorted(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
p = lambda t, q: t[min(len(t) - 1, int(q * (len(t) - 1)))] * 1000
for n in ("embedded", "daemon"):
    t = r[n]
    print(f"  {n:9s} p50 {p(t,.5):6.2f} ms  p90 {p(t,.9):6.2f} ms  p99 {p(t,.99):6.2f} ms")
print(f"  daemon - embedded (p50): {p(r['daemon'],.5) - p(r['embedded'],.5):+.2f} ms (target <= +1 ms)")
PY
echo

echo "== 2. sustained sandboxes/second through the daemon (/bin/true, $duration each)"
for c in 1 2 4 8; do
	bin/loadgen -host "$host" throughput -c "$c" -d "$duration" -- /bin/true | sed 's/^/  /'
done
echo "  anchors (single-run latency): crun ~130/s, runc ~45/s; target >= 300/s"
echo

echo "== 3. daemon resident memory with $idle idle apps"
bin/loadgen -host "$host" idle -n "$idle" -pid "$daemon_pid" | sed 's/^/  /'
echo "  target <= 64 MiB"
echo

echo "== 4. event emit cost"
go test -run '^$' -bench 'Emit' -benchmem ./sandbox/events/ | grep -E '^Benchmark' | sed 's/^/  /'
echo "  target <= 100 ns/event, 0 allocs"
echo

kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=""
left=$(find "$tmp/state/apps" "$tmp/state/logs" -mindepth 1 2>/dev/null | wc -l)
echo "leftovers after the daemon's SIGTERM: $left state/log files"
