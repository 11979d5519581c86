#!/usr/bin/env bash
# make test-vm: run pinfold's cgroup v2 tests inside a pure cgroup-v2 kernel
# booted under QEMU (hack/vmtest.sh), once with the tests in the root cgroup
# and once in a delegated leaf, as under systemd with Delegate=yes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

vm="$PWD/hack/vmtest.sh -a loglevel=1"

echo "== cgroup package, tests in the root cgroup"
CGO_ENABLED=0 go test -count=1 -exec "$vm" ./cgroup/
echo "== cgroup package, tests in a delegated leaf (/system.slice/pinfold.service)"
CGO_ENABLED=0 go test -count=1 -exec "$vm -e VMTEST_CGROUP=/system.slice/pinfold.service" ./cgroup/
echo "== sandbox end to end on cgroup v2 (CLONE_INTO_CGROUP, cgroup2 limits, OOM, cleanup)"
go test -count=1 -exec "$vm -d ." -run 'TestCgroupV2EndToEnd' -v ./sandbox/
