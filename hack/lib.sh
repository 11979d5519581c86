# shellcheck shell=bash
# Shared helpers for hack/*.sh. Source it; do not run it.
#
#   # shellcheck source-path=SCRIPTDIR source=lib.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It defines functions and the read-only variable REPO_ROOT, and changes no
# shell options: each script sets `set -euo pipefail` itself.

if [[ -n "${PINFOLD_HACK_LIB:-}" ]]; then
	return 0
fi
PINFOLD_HACK_LIB=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly REPO_ROOT

# prog is the name of the running script, for messages.
prog="$(basename "$0")"

# log prints a progress message on stderr.
log() {
	printf '%s: %s\n' "$prog" "$*" >&2
}

# warn prints a warning on stderr.
warn() {
	printf '%s: warning: %s\n' "$prog" "$*" >&2
}

# die prints an error on stderr and exits 1.
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

# have reports whether a command is on PATH.
have() {
	command -v "$1" >/dev/null 2>&1
}

# is_root reports whether the effective user is root.
is_root() {
	[[ "$(id -u)" -eq 0 ]]
}

# version_ge A B reports whether dotted version A >= B (e.g. 1.26.8 >= 1.26).
version_ge() {
	[[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

# go_min_version prints the Go version the module requires (the go directive
# of go.mod), or 1.26 when go.mod cannot be read.
go_min_version() {
	local v=""
	if [[ -r "$REPO_ROOT/go.mod" ]]; then
		v="$(awk '$1 == "go" { print $2; exit }' "$REPO_ROOT/go.mod")"
	fi
	printf '%s\n' "${v:-1.26}"
}

# find_go prints the path of the go command: PATH first, then the usual
# install location. Prints nothing when there is none.
find_go() {
	if have go; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		printf '%s\n' /usr/local/go/bin/go
	fi
}

# cgroup_mode prints v2, hybrid, v1 or none for this host's cgroup layout.
cgroup_mode() {
	local fstype
	fstype="$(stat -fc %T /sys/fs/cgroup 2>/dev/null || true)"
	case "$fstype" in
	cgroup2fs) echo v2 ;;
	tmpfs)
		if [[ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null || true)" == cgroup2fs ]]; then
			echo hybrid
		else
			echo v1
		fi
		;;
	*) echo none ;;
	esac
}
