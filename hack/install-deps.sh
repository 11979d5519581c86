#!/usr/bin/env bash
# Install what building and testing pinfold needs on a Debian or Ubuntu host.
#
# Idempotent: installs only missing packages, and runs `apt-get update` only
# when something must be installed. Needs root only to install.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<EOF
usage: $prog [--bench] [--vm] [--check]

Installs the packages pinfold needs, then checks the Go toolchain.

  always   libseccomp-dev pkg-config gcc libc6-dev make python3
           (cgo builds libseccomp-golang, which finds libseccomp with pkg-config;
            python3 runs examples/hello-agent)
  --bench  also bubblewrap hyperfine (hack/bench.sh)
  --vm     also qemu-system-x86 (the cgroup v2 VM tests)
  --check  install nothing; report what is missing and exit 1 if anything is

Run as root (for example with sudo) when something has to be installed.
EOF
}

base_pkgs=(libseccomp-dev pkg-config gcc libc6-dev make python3)
bench_pkgs=(bubblewrap hyperfine)
vm_pkgs=(qemu-system-x86)

flags=() # --bench/--vm as given, to repeat in messages
want_bench=0
want_vm=0
check_only=0
while (($# > 0)); do
	case "$1" in
	--bench)
		want_bench=1
		flags+=(--bench)
		;;
	--vm)
		want_vm=1
		flags+=(--vm)
		;;
	--check) check_only=1 ;;
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

# pkg_installed reports whether dpkg has a package fully installed.
pkg_installed() {
	[[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

if ! have dpkg-query || ! have apt-get; then
	die "this script needs a Debian or Ubuntu host (apt-get, dpkg-query); elsewhere install: ${base_pkgs[*]}, and Go $(go_min_version) or newer"
fi

wanted=("${base_pkgs[@]}")
((want_bench)) && wanted+=("${bench_pkgs[@]}")
((want_vm)) && wanted+=("${vm_pkgs[@]}")

present=()
missing=()
for pkg in "${wanted[@]}"; do
	if pkg_installed "$pkg"; then
		present+=("$pkg")
	else
		missing+=("$pkg")
	fi
done

log "already installed: ${present[*]:-none}"
status=0
if ((${#missing[@]} == 0)); then
	log "nothing to install"
elif ((check_only)); then
	log "missing: ${missing[*]} (to install them, run as root: $0${flags[*]:+ ${flags[*]}})"
	status=1
elif ! is_root; then
	die "missing: ${missing[*]}; installing them needs root: run 'sudo $0${flags[*]:+ ${flags[*]}}' (or install them yourself)"
else
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# --no-install-recommends keeps qemu-system-x86 at ~30 packages instead of ~180.
	apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"
	for pkg in "${missing[@]}"; do
		pkg_installed "$pkg" || die "apt-get finished but $pkg is not installed"
	done
	log "installed: ${missing[*]}"
fi

if pkg_installed pkg-config && ! pkg-config --exists libseccomp; then
	warn "pkg-config cannot find libseccomp: cgo builds of the seccomp package will fail"
	status=1
fi

# Go is not installed from apt: Debian's packaged Go is older than the module needs.
need_go="$(go_min_version)"
go_bin="$(find_go)"
if [[ -z "$go_bin" ]]; then
	warn "Go is not installed: install Go $need_go or newer (the official release tarball, unpacked into /usr/local/go) and add /usr/local/go/bin to PATH"
	status=1
else
	go_version="$("$go_bin" env GOVERSION 2>/dev/null || true)"
	go_version="${go_version#go}"
	if [[ -z "$go_version" ]] || ! version_ge "$go_version" "$need_go"; then
		warn "found Go ${go_version:-of unknown version} at $go_bin, but go.mod needs $need_go or newer: install a newer Go into /usr/local/go"
		status=1
	else
		log "go: $go_version at $go_bin (go.mod needs $need_go or newer)"
		if ! have go; then
			warn "$go_bin is not on PATH: add $(dirname "$go_bin") to PATH"
		fi
	fi
fi

if ((status == 0)); then
	log "ok: dependencies are in place"
fi
exit "$status"
