#!/usr/bin/env bash
# Drift's live manifest on a Btrfs environment of FILES files (default
# 100,000) with 1% changed since its pristine snapshot: full walk vs
# incremental walk vs the fast path (btrfs send --no-data). Builds a loop-file
# Btrfs under /var/tmp and removes it. Needs root and `npm run build` first.
#   bench/drift-fast-path.sh [FILES]
set -euo pipefail
FILES=${1:-100000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/bench/scratch-btrfs.sh"
scratch_btrfs drift-fast 4G
btrfs -q subvolume create "$TOP/@"

node "$HERE/bench/tree.mjs" make "$TOP/@" "$FILES"

cat >"$WORK/sysprime.toml" <<TOML
backend = "btrfs"
[btrfs]
top = "$TOP"
[state]
dir = "$WORK/state"
[boot]
loader = "none"
TOML
node "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" init --adopt @ --name bench >/dev/null
GEN=$(node "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" --json list | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const e=(j.environments??j).find(x=>x.name==="bench");console.log(e.generation)})')
mkdir "$WORK/stash"
node "$HERE/dist/bench/drift-fast-path.js" "$TOP" bench "$GEN" before "$WORK/stash"

# 1% changed: edits, new files, deletions, chmods, and a renamed directory.
node "$HERE/bench/tree.mjs" change "$TOP/ROOT/bench" "$FILES" --rename
sync
node "$HERE/dist/bench/drift-fast-path.js" "$TOP" bench "$GEN" after "$WORK/stash"
