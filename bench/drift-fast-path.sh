#!/usr/bin/env bash
# Drift's live manifest on a Btrfs environment of FILES files (default
# 100,000) with 1% changed since its pristine snapshot: full walk vs
# incremental walk vs the fast path (btrfs send --no-data). Builds a loop-file
# Btrfs under /var/tmp and removes it. Needs root and `npm run build` first.
#   bench/drift-fast-path.sh [FILES]
set -euo pipefail
FILES=${1:-100000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /var/tmp/sysprime-drift-fast.XXXXXX)
TOP=$WORK/top
cleanup() {
  umount "$TOP" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 4G "$WORK/img"
mkfs.btrfs -q "$WORK/img" >/dev/null 2>&1
mkdir "$TOP"
mount -o loop,noatime "$WORK/img" "$TOP"
btrfs -q subvolume create "$TOP/@"

# 500 files per directory, 1-8 KiB each.
node -e '
const fs = require("node:fs");
const [tree, files] = [process.argv[1], Number(process.argv[2])];
const block = Buffer.alloc(8192, "sysprime drift bench\n");
for (let i = 0; i < files; i++) {
  const d = `${tree}/usr/d${Math.floor(i / 5000)}/e${Math.floor(i / 500) % 10}`;
  if (i % 500 === 0) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(`${d}/f${i}`, block.subarray(0, 1024 + ((i * 7919) % 7168)));
}' "$TOP/@" "$FILES"

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

# 1% changed: edits, new files, deletions, a renamed directory, chmods.
node -e '
const fs = require("node:fs");
const [tree, files] = [process.argv[1], Number(process.argv[2])];
const n = Math.floor(files / 100);
const path = (i) => `${tree}/usr/d${Math.floor(i / 5000)}/e${Math.floor(i / 500) % 10}/f${i}`;
for (let k = 0; k < n; k++) {
  const i = (k * 97) % files;
  if (k % 4 === 0) fs.appendFileSync(path(i), "edited\n");
  else if (k % 4 === 1) fs.writeFileSync(path(i) + ".new", "new\n");
  else if (k % 4 === 2) fs.rmSync(path(i), { force: true });
  else fs.chmodSync(path(i), 0o600);
}
fs.renameSync(`${tree}/usr/d0/e9`, `${tree}/usr/d0/e9-moved`);
' "$TOP/ROOT/bench" "$FILES"
sync
node "$HERE/dist/bench/drift-fast-path.js" "$TOP" bench "$GEN" after "$WORK/stash"
