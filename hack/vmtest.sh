#!/usr/bin/env bash
# Run a test binary inside a throwaway QEMU VM with a pure cgroup v2 kernel.
#
# Development hosts run cgroup v1 (hybrid) and cannot switch, so pinfold's
# cgroup v2 paths are tested in a VM: Debian's cloud kernel, an initramfs
# holding only the test binary (and its shared libraries), and a Go PID 1
# (hack/vmtest/vminit). QEMU runs in TCG (software) mode: /dev/kvm on these
# hosts is PVM, which crashes stock kernels, so it is never used.
#
# Idempotent: the first run installs qemu-system-x86 (if missing, as root),
# downloads the kernel and builds the harness into the cache directory;
# later runs reuse them. Parallel runs are safe (setup is serialised with
# flock). Usable as `go test -exec`.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<EOF
usage: $prog [options] TESTBIN [ARGS...]

Boots a VM with a pure cgroup v2 kernel, runs TESTBIN ARGS... in it as root
(pid 1's child, cwd /vmtest/work) and exits with its status: the test's own
exit code, 128+N if it died of signal N, 124 on timeout, 125 if the VM gave
no result.

options:
  -d DIR        ship DIR as the test's working directory (for testdata/;
                with go test -exec, '-d .' ships the package directory)
  -f FILE       also ship FILE at the same path (repeatable); shared
                libraries it needs are shipped too
  -e K=V        set K=V in the test's environment (repeatable);
                VMTEST_CGROUP=/system.slice/x.service runs the test in that
                cgroup, a delegated leaf as under systemd, instead of the root
  -t SECONDS    kill the test after SECONDS (default: $default_timeout); the
                VM is stopped \$VMTEST_GRACE (default 120) seconds later
  -m SIZE       guest memory (default: \$VMTEST_MEM or 1G)
  -c N          guest CPUs (default: \$VMTEST_CPUS or 2)
  -a ARGS       extra kernel command line, e.g. loglevel=1 to keep OOM
                reports out of the test output
  -h            show this help

environment:
  VMTEST_CACHE   cache directory (default: \${XDG_CACHE_HOME:-\$HOME/.cache}/pinfold-vmtest);
                 delete vmlinuz* there to fetch the current kernel again
  VMTEST_KERNEL  boot this kernel image instead of Debian's cloud kernel

examples:
  CGO_ENABLED=0 go test -c -o /tmp/cgroup.test ./cgroup && $prog /tmp/cgroup.test -test.v
  go test -exec "\$PWD/hack/vmtest.sh -d ." -v ./cgroup
EOF
}

default_timeout=600
timeout_s=$default_timeout
mem="${VMTEST_MEM:-1G}"
cpus="${VMTEST_CPUS:-2}"
grace="${VMTEST_GRACE:-120}"
append=""
workdir=""
files=()
envs=()
while getopts ":d:f:e:t:m:c:a:h" opt; do
	case "$opt" in
	d) workdir="$OPTARG" ;;
	f) files+=("$OPTARG") ;;
	e) envs+=("$OPTARG") ;;
	t) timeout_s="$OPTARG" ;;
	m) mem="$OPTARG" ;;
	c) cpus="$OPTARG" ;;
	a) append="$OPTARG" ;;
	h)
		usage
		exit 0
		;;
	:)
		usage >&2
		die "option -$OPTARG needs an argument"
		;;
	*)
		usage >&2
		die "unknown option -$OPTARG"
		;;
	esac
done
shift $((OPTIND - 1))
(($# >= 1)) || {
	usage >&2
	die "no test binary given"
}
testbin="$1"
shift

[[ -f "$testbin" && -x "$testbin" ]] || die "$testbin is not an executable file"
[[ -z "$workdir" || -d "$workdir" ]] || die "-d $workdir: not a directory"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "-t $timeout_s: not a number of seconds"
[[ "$grace" =~ ^[0-9]+$ ]] || die "VMTEST_GRACE=$grace: not a number of seconds"
for f in "${files[@]}"; do
	[[ -f "$f" && "$f" == /* ]] || die "-f $f: not an absolute path of a regular file"
done
for kv in "${envs[@]}"; do
	[[ "$kv" == [A-Za-z_]*=* ]] || die "-e $kv: not K=V"
done

cache="${VMTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinfold-vmtest}"
mkdir -p "$cache"

# --- setup, once per cache directory, serialised between parallel runs ---

install_qemu() {
	have qemu-system-x86_64 && return 0
	is_root || die "qemu-system-x86_64 is missing; install it as root: apt-get install --no-install-recommends qemu-system-x86"
	log "installing qemu-system-x86 (no recommends)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
	have qemu-system-x86_64 || die "apt-get finished but qemu-system-x86_64 is missing"
}

# fetch_kernel extracts vmlinuz from the package that linux-image-cloud-amd64
# depends on (its ABI number changes with security updates). The cloud
# flavour has the serial console, initrd support, cgroups, seccomp and
# namespaces built in, needs no modules, and boots twice as fast in TCG as
# the generic one.
fetch_kernel() {
	local kernel="$cache/vmlinuz" meta=linux-image-cloud-amd64 pkg tmp deb
	[[ -s "$kernel" ]] && return 0
	if ! have apt-get || ! have dpkg-deb; then
		die "fetching the kernel needs apt-get and dpkg-deb (or set VMTEST_KERNEL)"
	fi
	pkg="$(apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
	if [[ -z "$pkg" ]]; then
		is_root || die "apt has no $meta; run 'apt-get update' as root (or set VMTEST_KERNEL)"
		apt-get update -qq
		pkg="$(apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
	fi
	[[ -n "$pkg" ]] || die "cannot resolve the kernel package of $meta"
	log "fetching kernel $pkg"
	tmp="$(mktemp -d "$cache/kernel.XXXXXX")"
	(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
	deb="$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)"
	[[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
	mv "$(find "$tmp/boot" -name 'vmlinuz-*' -print -quit)" "$kernel.tmp"
	printf '%s\n' "$pkg" >"$kernel.pkg"
	mv "$kernel.tmp" "$kernel"
	rm -rf "$tmp"
}

# build_harness builds vminit and mkcpio (static) when their sources or the
# Go version changed.
build_harness() {
	local src="$REPO_ROOT/hack/vmtest" stamp go_bin
	go_bin="$(find_go)"
	[[ -n "$go_bin" ]] || die "go is not installed"
	stamp="$(find "$src" -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)-$("$go_bin" env GOVERSION)"
	if [[ -x "$cache/bin/vminit" && -x "$cache/bin/mkcpio" && "$(cat "$cache/bin/stamp" 2>/dev/null)" == "$stamp" ]]; then
		return 0
	fi
	log "building the VM harness"
	mkdir -p "$cache/bin"
	(cd "$REPO_ROOT" && CGO_ENABLED=0 "$go_bin" build -trimpath -o "$cache/bin/vminit" ./hack/vmtest/vminit)
	(cd "$REPO_ROOT" && CGO_ENABLED=0 "$go_bin" build -trimpath -o "$cache/bin/mkcpio" ./hack/vmtest/mkcpio)
	printf '%s\n' "$stamp" >"$cache/bin/stamp"
}

exec 9>"$cache/lock"
flock 9
install_qemu
if [[ -n "${VMTEST_KERNEL:-}" ]]; then
	[[ -f "$VMTEST_KERNEL" ]] || die "VMTEST_KERNEL=$VMTEST_KERNEL is not a file"
	kernel="$VMTEST_KERNEL"
else
	fetch_kernel
	kernel="$cache/vmlinuz"
fi
build_harness
flock -u 9
exec 9>&-

# --- the initramfs ---

work="$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")"
qemu_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n "$qemu_pid" ]]; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

spec="$work/spec"
# entry FIELDS...: one tab-separated mkcpio spec line.
entry() {
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$spec"
}

# ship_libs BIN: the shared libraries BIN loads, at the paths ldd resolves
# them to, and ld.so.cache so the loader finds them there.
ship_libs() {
	local out line lib
	out="$(ldd "$1" 2>/dev/null)" || return 0 # static: "not a dynamic executable"
	while IFS= read -r line; do
		lib=""
		if [[ "$line" =~ =\>\ (/[^ ]+) ]]; then
			lib="${BASH_REMATCH[1]}"
		elif [[ "$line" =~ ^[[:space:]]*(/[^ ]+) ]]; then
			lib="${BASH_REMATCH[1]}"
		fi
		[[ -n "$lib" ]] && entry file "$lib" "$lib"
	done <<<"$out"
	[[ -f /etc/ld.so.cache ]] && entry file /etc/ld.so.cache /etc/ld.so.cache 0644
	return 0
}

printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$work/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/group"
if (($# > 0)); then printf '%s\0' "$@" >"$work/args"; else : >"$work/args"; fi
{
	printf '%s\0' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp VMTEST=1
	if ((${#envs[@]} > 0)); then printf '%s\0' "${envs[@]}"; fi
} >"$work/env"
printf '%s\n' "$timeout_s" >"$work/timeout"

: >"$spec"
entry file /init "$cache/bin/vminit" 0755
entry dir /dev 0755
entry nod /dev/console 0600 c 5 1
entry dir /root 0700
entry dir /tmp 01777
entry file /etc/passwd "$work/passwd" 0644
entry file /etc/group "$work/group" 0644
entry file /vmtest/bin/test "$testbin" 0755
entry file /vmtest/args "$work/args" 0644
entry file /vmtest/env "$work/env" 0644
entry file /vmtest/timeout "$work/timeout" 0644
ship_libs "$testbin"
for f in "${files[@]}"; do
	entry file "$f" "$f"
	ship_libs "$f"
done
if [[ -n "$workdir" ]]; then
	entry tree /vmtest/work "$workdir"
else
	entry dir /vmtest/work 0755
fi
"$cache/bin/mkcpio" -o "$work/initramfs.cpio" <"$spec"

# --- boot ---

# The guest prints "VMTEST-EXIT: <n>" and powers off (ACPI). panic=-1 with
# -no-reboot turns a guest panic into an immediate QEMU exit. The serial
# console ends lines with CRLF.
mkfifo "$work/console"
timeout --kill-after=10 "$((timeout_s + grace))" \
	qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp "$cpus" \
	-nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot \
	-kernel "$kernel" -initrd "$work/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 loglevel=4 $append" \
	</dev/null >"$work/console" 2>&1 &
qemu_pid=$!

code=""
blank=0
while true; do
	line=""
	status=0
	if [[ -n "$code" ]]; then
		# After the marker the guest powers off by itself; stop it if it
		# has not within 10 s.
		IFS= read -r -t 10 line || status=$?
		if ((status > 128)); then
			warn "the VM did not power off after the test ended; stopping it"
			kill "$qemu_pid" 2>/dev/null || true
			break
		fi
	else
		IFS= read -r line || status=$?
	fi
	((status == 0)) || [[ -n "$line" ]] || break # end of output
	[[ -z "$code" ]] || continue                 # the guest shutting down
	line="${line%$'\r'}"
	if [[ -z "$line" ]]; then
		# Held back: vminit writes a newline before the marker in case
		# the test's output did not end with one.
		blank=$((blank + 1))
		continue
	fi
	if [[ "$line" =~ ^VMTEST-EXIT:\ ([0-9]+)$ ]]; then
		code="${BASH_REMATCH[1]}"
		blank=$((blank - 1))
	fi
	for ((; blank > 0; blank--)); do echo; done
	blank=0
	[[ -n "$code" ]] || printf '%s\n' "$line"
done <"$work/console"

qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=""

if [[ -n "$code" ]]; then
	exit "$code"
fi
if ((qemu_status == 124 || qemu_status == 137)); then
	warn "the VM did not finish within $((timeout_s + grace)) s; stopped it"
	exit 124
fi
warn "the VM gave no result (qemu exited with status $qemu_status)"
exit 125
