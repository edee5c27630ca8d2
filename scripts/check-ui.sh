#!/usr/bin/env bash
# check-ui.sh checks that the committed browser build
# (internal/console/assets/dist: GraphiQL and the graphql-ws client, which
# crmsync embeds) matches its sources: it installs the pinned toolchain
# (internal/console/ui/package-lock.json) with `npm ci`, rebuilds, and
# fails if any built file changed. Run by scripts/test.sh (make test).
# To update the build after changing ui/: run this script, or
# `cd internal/console/ui && npm ci && npm run build`, and commit.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "check-ui.sh: $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z ${APT_UPDATED:-} ]]; then
		apt-get update -qq
		export APT_UPDATED=1
	fi
	log "apt-get install nodejs npm"
	apt-get install -y -qq --no-install-recommends nodejs npm
fi

dist=internal/console/assets/dist
snapshot() { (cd "$dist" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(snapshot)
log "npm ci && npm run build (node $(node --version), npm $(npm --version))"
(cd internal/console/ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
after=$(snapshot)
if [[ $before != "$after" ]]; then
	log "the committed build in $dist does not match internal/console/ui; commit the rebuilt files. Changed:"
	diff <(echo "$before") <(echo "$after") | awk '/^[<>]/ {print "  " $3}' | sort -u >&2
	exit 1
fi
log "the committed build matches its sources"
