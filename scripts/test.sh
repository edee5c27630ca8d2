#!/usr/bin/env bash
# test.sh is `make test`: it installs what the build needs (only if
# missing), starts a throwaway PostgreSQL 15, runs go vet, checks that
# generated code is up to date, and runs every test with the race detector
# against both SQLite and that PostgreSQL. The cluster is removed on success
# and on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z ${APT_UPDATED:-} ]]; then
		log "apt-get update"
		apt-get update -qq
		export APT_UPDATED=1
	fi
	log "apt-get install $*"
	apt-get install -y -qq --no-install-recommends "$@"
}

# protoc generates the connector plugin's gRPC code (go generate).
if ! command -v protoc >/dev/null 2>&1; then
	apt_install protobuf-compiler libprotobuf-dev
fi
# The race detector needs cgo, so a C compiler.
if ! command -v gcc >/dev/null 2>&1; then
	apt_install gcc libc6-dev
fi

# In /tmp, not $TMPDIR: the postgres user must be able to reach it.
PGDIR=$(mktemp -d /tmp/crmsync-pg.XXXXXX)
cleanup() { scripts/pg.sh stop "$PGDIR"; }
trap cleanup EXIT
TEST_DATABASE_URL=$(scripts/pg.sh start "$PGDIR")
export TEST_DATABASE_URL
log "PostgreSQL at $TEST_DATABASE_URL"

log "go vet ./..."
go vet ./...

# Generated code must match its sources: regenerate and compare every Go
# file (and gqlgen's inputs) before and after.
snapshot() {
	find . -path ./.git -prune -o -type f \( -name '*.go' -o -name '*.graphql' \) -print0 |
		sort -z | xargs -0 sha256sum
}
log "go generate ./... (checking generated code is up to date)"
before=$(snapshot)
go generate ./...
after=$(snapshot)
if [[ $before != "$after" ]]; then
	log "generated code is out of date; run 'make generate' and commit the result. Changed files:"
	diff <(echo "$before") <(echo "$after") | awk '/^[<>]/ {print "  " $3}' | sort -u >&2
	exit 1
fi

export CRMSYNC_REQUIRE_POSTGRES=1 # PostgreSQL tests fail here instead of skipping
log "go test -race ./..."
go test -race -count=1 ./...
log "all tests passed"
