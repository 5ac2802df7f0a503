#!/usr/bin/env bash
# Drift on OpenZFS: the fast path (`zfs diff` between the pristine snapshot and
# the environment, then only the listed paths read) against the walk of the
# whole tree, through `sysprime drift` as an admin runs it, on an environment
# of FILES files (default 20,000) with 1% changed since its pristine snapshot.
# The peer, measured in the same run: `find -printf` of the same tree (names,
# sizes, times, modes: what any walk must read at least). Both reports must be
# equal item for item. Median of 3 alternating runs of each.
#
# Needs OpenZFS (zfs-fuse has no `zfs diff`), root and a built sysprime. It
# makes a file-backed pool in $TMPDIR (default /var/tmp) and destroys it. On
# a host without OpenZFS it runs in the VM suite's OpenZFS guest:
#   node dist/vm-tests/run.js --only 90      (vm-tests/README.md, "Benchmarks")
#   bench/drift-zfs.sh [FILES]
set -euo pipefail
FILES=${1:-20000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SYSPRIME="$HERE/bin/sysprime"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/sysprime-drift-zfs.XXXXXX")
POOL=spbench$$
zfs version >/dev/null 2>&1 || { echo "drift-zfs: needs OpenZFS (zfs version fails: zfs-fuse has no zfs diff)" >&2; exit 2; }
cleanup() {
  zpool destroy -f "$POOL" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 3G "$WORK/img"
zpool create -f -o cachefile=none -R "$WORK/alt" -O mountpoint=none -O canmount=off -O atime=off -O compression=lz4 "$POOL" "$WORK/img"
zfs create -o canmount=off -o mountpoint=none "$POOL/ROOT"
zfs create -o canmount=noauto -o mountpoint=/ "$POOL/ROOT/bench"
zfs mount "$POOL/ROOT/bench"

node "$HERE/bench/tree.mjs" make "$WORK/alt" "$FILES"
zfs unmount "$POOL/ROOT/bench"

cat >"$WORK/sysprime.toml" <<TOML
backend = "zfs"
[zfs]
pool = "$POOL"
[state]
dir = "$WORK/state"
[boot]
loader = "none"
TOML
sp() { node "$SYSPRIME" --config "$WORK/sysprime.toml" "$@"; }
sp init --adopt "$POOL/ROOT/bench" >/dev/null
# The first drift makes and keeps the pristine snapshot's manifest (a walk), as on any machine after init.
sp drift --no-record bench >/dev/null || [ $? -le 1 ]

# 1% changed: edits, new files, deletions, chmods.
mkdir "$WORK/mnt"
sp mount --force bench "$WORK/mnt" >/dev/null
node "$HERE/bench/tree.mjs" change "$WORK/mnt" "$FILES"
sync

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
peer() { find "$WORK/mnt" -xdev -printf '%p %s %T@ %m\n' >/dev/null; }
drift() { SYSPRIME_DRIFT_METHOD=$1 sp drift --format json --no-record bench > "$WORK/$1.json" || [ $? -le 1 ]; }
umount_env() { sp umount bench >/dev/null; }
declare -a W C F S
for i in 1 2 3; do
  # What every sysprime command costs before it does anything (large in a slow guest).
  S+=("$(seconds sp --version)")
  # The tree is mounted for find and unmounted for drift (zfs diff reads it through sysprime's own mount).
  F+=("$(seconds peer)")
  umount_env
  W+=("$(seconds drift walk)")
  C+=("$(seconds drift changes)")
  sp mount --force bench "$WORK/mnt" >/dev/null
done
umount_env
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
w=$(median "${W[@]}"); c=$(median "${C[@]}"); f=$(median "${F[@]}"); st=$(median "${S[@]}")

# The same report both ways, but for when each ran and the digests of the manifests each wrote.
node -e '
const fs = require("node:fs");
const read = (f) => { const j = JSON.parse(fs.readFileSync(f, "utf8")); delete j.at; delete j.manifests; return JSON.stringify(j); };
if (read(process.argv[1]) !== read(process.argv[2])) { console.error("drift-zfs: the walk and zfs diff disagree"); process.exit(1); }
const n = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).items.length;
console.log(`reports equal: ${n} items`);' "$WORK/walk.json" "$WORK/changes.json"

echo "files: $FILES, changed: $((FILES / 100)) (OpenZFS $(zfs version | head -1))"
printf 'find -printf (peer): %.2f s\n' "$f"
printf 'sysprime --version:  %.2f s  (start-up, in both drifts below)\n' "$st"
printf 'drift, walk:         %.2f s  (%s x find)\n' "$w" "$(ratio "$w" "$f")"
printf 'drift, zfs diff:     %.2f s  (%s x find, %s x the walk)\n' "$c" "$(ratio "$c" "$f")" "$(ratio "$c" "$w")"
