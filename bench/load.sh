#!/usr/bin/env bash
# Load: manifests and drift of a 500,000-entry environment, and staging with
# 10,000 files changed by the admin, on a throwaway loop-file Btrfs. Each
# sysprime figure is printed beside a peer doing the least work the same job
# needs, measured in the same run: `find -printf` and parallel `xxhsum` for
# the manifest, `rsync --files-from` and `cp -a` of the changed files for
# carrying them over; then the first boot of the staged environment, with a
# tenth as many files changed again since staging. The last lines are the rows
# of the scale issue's table, each with its goal.
#   bench/load.sh [ENTRIES] [CHANGED]    (defaults 500000 and 10000)
# Needs root and `npm run build` first. Removes everything it made.
set -euo pipefail
ENTRIES=${1:-500000}
CHANGED=${2:-10000}
# Files changed again after staging, for the first boot to replay.
FIRST=$(( CHANGED / 10 ))
HERE=$(cd "$(dirname "$0")/.." && pwd)
NPROC=$(nproc)
. "$HERE/bench/scratch-btrfs.sh"

sp() { "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" "$@"; }
# measure NAME CMD...: one run (these are long), wall seconds and peak RSS.
declare -A SECS RSS
measure() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
    local rc=$?
    # drift exits 1 when there is drift: that is its answer, not a failure.
    if [[ $rc -ne 1 || $name != drift* ]]; then echo "$name failed ($rc):"; tail -5 "$WORK/err"; exit 1; fi
  }
  read -r s m < <(tail -n 1 "$WORK/time")
  s=${s##* }
  SECS[$name]=$s
  RSS[$name]=$m
  printf '%-40s %8.2f s %8d KB\n' "$name" "$s" "$m"
}
ratio() { awk "BEGIN{printf \"%.2f\", ${SECS[$1]} / ${SECS[$2]}}"; }

scratch_btrfs load 12G
MNT=$WORK/mnt
mkdir "$MNT"
btrfs -q subvolume create "$TOP/@"
ROOT=$TOP/@

# An OS-like tree: ENTRIES entries in /usr (package files, 100 to 4,000
# bytes), 200 files a directory, and CHANGED admin-editable files in /etc.
node - "$ROOT" "$ENTRIES" "$CHANGED" <<'JS'
const fs = require('node:fs');
const [root, entries, changed] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const block = Buffer.alloc(4000, 'package file contents, line after line\n');
fs.mkdirSync(`${root}/etc/bulk`, { recursive: true });
for (const d of ['var/lib', 'var/log', 'root', 'home', 'tmp', 'boot', 'usr/local']) fs.mkdirSync(`${root}/${d}`, { recursive: true });
for (let i = 0; i < changed; i++) fs.writeFileSync(`${root}/etc/bulk/c${i}.conf`, `# setting ${i}\nvalue = ${i}\n`);
const files = entries - changed - Math.ceil(entries / 200);
for (let i = 0; i < files; i++) {
  const dir = `${root}/usr/share/p${Math.floor(i / 20000)}/d${Math.floor(i / 200) % 100}`;
  if (i % 200 === 0) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(`${dir}/f${i}`, block.subarray(0, 100 + ((i * 37) % 3900)));
}
fs.writeFileSync(`${root}/usr/lib-os-release`, 'ID=load\n');
JS
btrfs filesystem sync "$TOP"

# A store repository with version 1 (already in the tree) and 2 of a small package.
pkg() { mkdir -p "$1/usr/share/load-pkg" && echo "$2" > "$1/usr/share/load-pkg/VERSION"; }
pkg "$WORK/pkg-1" 1
pkg "$WORK/pkg-2" 2
# Signed as a real repository is ([update] trusted_keys holds its public half).
"$HERE/bin/sysprime" key generate "$WORK/repo.key" --comment "load repository" >/dev/null
node "$HERE/scripts/make-store-repo.mjs" --sign "$WORK/repo.key" "$WORK/repo" load-pkg 1 "$WORK/pkg-1" >/dev/null
cp -a "$WORK/pkg-1/." "$ROOT/"
scratch_config <<TOML
[update]
method = "store"
repository = "$WORK/repo"
trusted_keys = ["$WORK/repo.key.pub"]
TOML
sp -q init --adopt @ --name base >/dev/null
LIVE=$TOP/ROOT/base
entries=$(find "$LIVE" -xdev | wc -l)
echo "tree: $entries entries, $(du -sxm "$LIVE" | cut -f1) MB; $NPROC cores; $(uname -r); node $(node --version); load $(cut -d' ' -f1-3 /proc/loadavg)"
find "$LIVE" -xdev -type f -print0 | xargs -0 -P"$NPROC" -n 5000 cat >/dev/null

echo
echo "== manifest of $entries entries"
measure 'find -printf (stat walk)' find "$LIVE" -xdev -printf '%p %s %m %T@ %U %G %i\n'
measure "xxhsum -H64 -P$NPROC" bash -c "find '$LIVE' -xdev -type f -print0 | xargs -0 -P$NPROC -n 5000 xxhsum -H64"
# --index: the incremental create below reads it (writing it is a few tens of ms here).
measure 'sysprime bart create' "$HERE/bin/sysprime" bart create -R "$LIVE" --index -o "$WORK/full.bart"
measure 'bart create --previous (nothing changed)' "$HERE/bin/sysprime" bart create -R "$LIVE" --previous "$WORK/full.bart" -o "$WORK/inc.bart"
# The same manifest either way, but for its date line.
same=no; cmp -s <(grep -v '^! [A-Z][a-z]*day, ' "$WORK/full.bart") <(grep -v '^! [A-Z][a-z]*day, ' "$WORK/inc.bart") && same=yes
echo "incremental manifest the same as the full one: $same"

echo
echo "== drift, first (makes and keeps the pristine manifest) and after $CHANGED admin changes"
# The first drift walks and hashes the pristine snapshot, whose page cache
# is cold (each subvolume has inodes, and so cached pages, of its own),
# where the runs above read the live tree warmed by cat. The fair anchor is
# a full bart create of a tree as cold: another snapshot of the same one,
# made before the drift and read after it (the two share their metadata
# blocks, which the first reader warms: the anchor gets that, not drift).
PRISTINE=$(find "$TOP/ROOT/.pristine" -mindepth 1 -maxdepth 1 | head -n 1)
btrfs -q subvolume snapshot -r "$PRISTINE" "$TOP/cold-peer"
measure 'drift (nothing changed)' "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" drift --format json
measure 'sysprime bart create, cold snapshot' "$HERE/bin/sysprime" bart create -R "$TOP/cold-peer" -o "$WORK/cold.bart"
btrfs -q subvolume delete "$TOP/cold-peer"
for ((i = 0; i < CHANGED; i++)); do echo "admin = $i" >> "$LIVE/etc/bulk/c$i.conf"; done
# The update changes a few of the same files: those merge.
measure "drift ($CHANGED changed)" "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" drift --format json
reported=$(node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(d.items.length)' "$WORK/out" 2>/dev/null || echo '?')
echo "drift reported $reported changes"

echo
echo "== staging with $CHANGED files changed by the admin"
mkdir -p "$WORK/pkg-2/etc/bulk"
for i in 0 1 2 3 4 5 6 7 8 9; do printf '# setting %s, as of version 2\nvalue = %s\n' "$i" "$i" > "$WORK/pkg-2/etc/bulk/c$i.conf"; done
node "$HERE/scripts/make-store-repo.mjs" --sign "$WORK/repo.key" "$WORK/repo" load-pkg 2 "$WORK/pkg-2" >/dev/null
# The peers: copying just the changed files onto a snapshot of the pristine tree (where they
# are as installed), the least any tool must write; rsync also reads their ACLs and xattrs.
(cd "$LIVE" && find etc/bulk -type f) >"$WORK/changed.list"
btrfs -q subvolume snapshot "$PRISTINE" "$TOP/peer"
measure "rsync -aAXH --files-from, $CHANGED files" rsync -aAXH --files-from="$WORK/changed.list" "$LIVE/" "$TOP/peer/"
btrfs -q subvolume delete "$TOP/peer"
btrfs -q subvolume snapshot "$PRISTINE" "$TOP/peer"
measure "cp -a of the $CHANGED changed files" bash -c "cd '$LIVE' && xargs -a '$WORK/changed.list' cp -a --parents -t '$TOP/peer/'"
btrfs -q subvolume delete "$TOP/peer"
measure 'sysprime stage' "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" stage
cp "$WORK/err" "$WORK/stage.err"
# Where staging spent its time, step by step.
grep -E 'done \(' "$WORK/stage.err" | head -20 || true
SECS[carry]=$(sed -n "s/^\[4\/8\] carry the admin's changes over: done (\([0-9.]*\) s)$/\1/p" "$WORK/stage.err")
sp mount gen-1 "$MNT" >/dev/null
carried=$(grep -l '^admin = ' "$MNT"/etc/bulk/*.conf | wc -l)
merged=$(grep -l 'as of version 2' "$MNT"/etc/bulk/*.conf | xargs -r grep -l '^admin = ' | wc -l || true)
sp umount gen-1 >/dev/null
echo "in the staged environment: $carried of $CHANGED admin changes carried over, $merged merged with the update's"

echo
echo "== first boot: $FIRST of the admin's files changed again since staging"
# What the first-boot unit runs, here against the staged environment mounted
# by sysprime instead of booted: the same replay, less the boot around it.
for ((i = 0; i < FIRST; i++)); do echo "after staging = $i" >> "$LIVE/etc/bulk/c$((i * CHANGED / FIRST)).conf"; done
measure "first boot, $FIRST changed since staging" "$HERE/bin/sysprime" --config "$WORK/sysprime.toml" reintegrate --first-boot --to gen-1
sp mount gen-1 "$MNT" >/dev/null
again=$(grep -l '^after staging = ' "$MNT"/etc/bulk/*.conf | wc -l)
sp umount gen-1 >/dev/null
echo "in the staged environment after its first boot: $again of $FIRST later changes"

echo
echo "bart create / find -printf:           $(ratio 'sysprime bart create' 'find -printf (stat walk)')x"
echo "stage / cp -a of the changed files:    $(ratio 'sysprime stage' "cp -a of the $CHANGED changed files")x"
max=0; for k in "${!RSS[@]}"; do [[ $k == sysprime* || $k == drift* || $k == bart* ]] && (( RSS[$k] > max )) && max=${RSS[$k]}; done
echo "peak memory of sysprime runs:         $((max / 1024)) MB"
echo
echo "== the scale issue's rows: measured (goal)"
echo "stage, peak memory:                   $((RSS['sysprime stage'] / 1024)) MB   (<= 300 MB)"
echo "carrying over / rsync --files-from:   $(ratio carry "rsync -aAXH --files-from, $CHANGED files")x   (<= 3x; ${SECS[carry]} s, step 4 of stage)"
echo "first drift / cold bart create:       $(ratio 'drift (nothing changed)' 'sysprime bart create, cold snapshot')x   (<= 1.2x)"
echo "first drift, peak memory:             $((RSS['drift (nothing changed)'] / 1024)) MB   (<= 300 MB)"
echo "drift after the changes / find:       $(ratio "drift ($CHANGED changed)" 'find -printf (stat walk)')x   (<= 2x)"
echo "bart create / parallel xxhsum:        $(ratio 'sysprime bart create' "xxhsum -H64 -P$NPROC")x   (<= 1.3x; the verdict is bench/bart.sh /usr, median of 5)"
echo "incremental bart create / find:       $(ratio 'bart create --previous (nothing changed)' 'find -printf (stat walk)')x   (<= 2x)"
echo "first boot, $FIRST changed since staging: ${SECS["first boot, $FIRST changed since staging"]} s, $((RSS["first boot, $FIRST changed since staging"] / 1024)) MB   (adds < 1 s to the boot; here the replay alone, on the host)"
