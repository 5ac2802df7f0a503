#!/usr/bin/env bash
# Export and import of an environment of ENTRIES files (default 100,000)
# with CHANGED of them changed since its pristine state (default 1,000),
# against `btrfs send` to a file and `btrfs receive` from it of the same
# read-only snapshots, measured in the same run: what the framing, the
# SHA-256 and the bookkeeping add to the filesystem's own tools. Plain and
# `--with-pristine` (the pristine whole, the environment as an increment
# from it: `btrfs send` of both, the second with -p), with each file's size.
# On a loop-file Btrfs under /var/tmp that it removes.
#   bench/transfer.sh [ENTRIES] [CHANGED]
# Needs root and `npm run build` first.
set -euo pipefail
ENTRIES=${1:-100000}
CHANGED=${2:-1000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/bench/scratch-btrfs.sh"
scratch_btrfs transfer 8G

sp() { "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" "$@"; }
declare -A SECS
measure() {
  local name=$1; shift
  local t0 t1
  sync
  t0=$(date +%s.%N)
  "$@" >"$WORK/out" 2>"$WORK/err" || { echo "$name failed:"; tail -5 "$WORK/err"; exit 1; }
  sync
  t1=$(date +%s.%N)
  SECS[$name]=$(awk "BEGIN{print $t1 - $t0}")
  printf '%-44s %8.2f s\n' "$name" "${SECS[$name]}"
}
ratio() { awk "BEGIN{printf \"%.2f\", ${SECS[$1]} / ${SECS[$2]}}"; }
size() { du -m "$1" | cut -f1; }

btrfs -q subvolume create "$TOP/@"
node - "$TOP/@" "$ENTRIES" <<'JS'
const fs = require('node:fs');
const [root, entries] = [process.argv[2], Number(process.argv[3])];
const block = Buffer.alloc(4000, 'package file contents, line after line\n');
for (const d of ['etc', 'var/lib', 'root', 'home', 'tmp', 'boot']) fs.mkdirSync(`${root}/${d}`, { recursive: true });
for (let i = 0; i < entries; i++) {
  const dir = `${root}/usr/share/p${Math.floor(i / 20000)}/d${Math.floor(i / 200) % 100}`;
  if (i % 200 === 0) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(`${dir}/f${i}`, block.subarray(0, 100 + ((i * 37) % 3900)));
}
JS
scratch_config </dev/null
sp -q init --adopt @ --name base >/dev/null
sp -q create edited >/dev/null
# Spread over the tree (7919 is prime: CHANGED distinct files).
for ((i = 0; i < CHANGED; i++)); do j=$((i * 7919 % ENTRIES)); echo "changed here $i" >> "$TOP/ROOT/edited/usr/share/p$((j / 20000))/d$((j / 200 % 100))/f$j"; done
btrfs filesystem sync "$TOP"
PRISTINE=$(find "$TOP/ROOT/.pristine" -mindepth 1 -maxdepth 1 -type d | head -1)
echo "tree: $ENTRIES files, $(du -sxm "$TOP/ROOT/edited" | cut -f1) MB, $CHANGED changed since the pristine; $(nproc) cores; $(uname -r); node $(node --version)"

# The peers read the same read-only snapshot a plain export takes.
btrfs -q subvolume snapshot -r "$TOP/ROOT/edited" "$TOP/edited-ro"
mkdir "$TOP/rx"

echo
echo "== plain"
measure 'btrfs send > file' bash -c "btrfs send -q '$TOP/edited-ro' > '$WORK/raw.send'"
measure 'sysprime export' sp export edited "$WORK/plain.export"
measure 'btrfs receive < file' bash -c "btrfs receive -q '$TOP/rx' < '$WORK/raw.send'"
measure 'sysprime import' sp import "$WORK/plain.export" plain
echo "export / send: $(ratio 'sysprime export' 'btrfs send > file') x; import / receive: $(ratio 'sysprime import' 'btrfs receive < file') x; files: $(size "$WORK/raw.send") MB sent, $(size "$WORK/plain.export") MB exported"
btrfs -q subvolume delete "$TOP/rx/edited-ro"
rm -f "$WORK/raw.send" "$WORK/plain.export"

echo
echo "== with its pristine state"
measure 'btrfs send pristine, send -p' bash -c "{ btrfs send -q '$PRISTINE'; btrfs send -q -p '$PRISTINE' '$TOP/edited-ro'; } > '$WORK/raw.send'"
measure 'sysprime export --with-pristine' sp export --with-pristine edited "$WORK/p.export"
measure 'btrfs receive < both' bash -c "btrfs receive -q '$TOP/rx' < '$WORK/raw.send'"
measure 'sysprime import --with-pristine' sp import --with-pristine "$WORK/p.export" kept
echo "export / send: $(ratio 'sysprime export --with-pristine' 'btrfs send pristine, send -p') x; import / receive: $(ratio 'sysprime import --with-pristine' 'btrfs receive < both') x; files: $(size "$WORK/raw.send") MB sent, $(size "$WORK/p.export") MB exported"
