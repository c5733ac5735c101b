#!/usr/bin/env bash
# The ProVerif proofs of the on-demand attachment protocol (docs/proof),
# as a test: runs scripts/verify.sh from the source root, whatever the
# current directory.  Exit 77 (skipped) when proverif is not installed;
# otherwise verify.sh's status, its last line the summary
# "proof: N checks passed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
exec scripts/verify.sh "$@"
