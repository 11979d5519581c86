#!/usr/bin/env bash
# make fuzz: run every Go fuzz target in the module for FUZZTIME each
# (default 30s). A failing input is written under the package's
# testdata/fuzz/ by go test; commit it so the failure becomes a regression
# test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-30s}"
failed=0
while read -r pkg; do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	mapfile -t targets < <(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u)
	for target in "${targets[@]}"; do
		echo "== $pkg $target ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s "$pkg"; then
			failed=1
		fi
	done
done < <(go list ./...)
exit "$failed"
