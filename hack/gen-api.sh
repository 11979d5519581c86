#!/usr/bin/env bash
# make api: regenerate the Go code of the daemon's API from api/**/*.proto.
# The generated files are committed, so building pinfold never needs protoc;
# run this after changing a .proto file. Installs protoc (Debian's
# protobuf-compiler) if missing and the pinned Go plugins into a cache dir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Pinned plugin versions: the runtime libraries in go.mod must match.
protoc_gen_go=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
protoc_gen_connect_go=connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.19.1

if ! command -v protoc >/dev/null; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "gen-api.sh: protoc is missing; install Debian's protobuf-compiler (as root)" >&2
		exit 1
	fi
	apt-get update -qq && apt-get install -y -qq --no-install-recommends protobuf-compiler
fi
gobin="${XDG_CACHE_HOME:-$HOME/.cache}/pinfold-gen"
mkdir -p "$gobin"
GOBIN="$gobin" go install "$protoc_gen_go"
GOBIN="$gobin" go install "$protoc_gen_connect_go"

mapfile -t protos < <(find api -name '*.proto' | sort)
PATH="$gobin:$PATH" protoc -I api -I /usr/include \
	--go_out=api --go_opt=paths=source_relative \
	--connect-go_out=api --connect-go_opt=paths=source_relative \
	"${protos[@]}"
echo "gen-api.sh: generated Go code for ${protos[*]}"
