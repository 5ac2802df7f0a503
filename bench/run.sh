#!/usr/bin/env bash
# `npm run bench`: the host benchmarks, each with its defaults, one after
# the other (each prints its ratios against its peer; bench/RESULTS.md has
# past runs). The load run (bench/load.sh, about ten minutes and 12 GB of
# loop file) and the OpenZFS one (bench/drift-zfs.sh, in the VM guest:
# `node dist/vm-tests/run.js --only 90`) are run on their own. Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
for bench in "bart.sh /usr" bart-drift.sh drift-fast-path.sh remove-tree.sh transfer.sh; do
  echo "== bench/$bench"
  # shellcheck disable=SC2086 # the arguments are part of the list
  bash "$HERE"/bench/$bench
  echo
done
