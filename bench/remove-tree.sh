#!/usr/bin/env bash
# Removing a tree of FILES files (default 100,000, 200 a directory) the way
# the store updater removes the /usr it replaces (removeTreeIn: confined,
# every directory opened without following links, one sync at the end),
# against `rm -rf` of an identical tree, alternating, on a loop-file Btrfs
# under /var/tmp that it removes. Needs root and `npm run build` first.
#   bench/remove-tree.sh [FILES] [ROUNDS]
set -euo pipefail
FILES=${1:-100000}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/bench/scratch-btrfs.sh"
scratch_btrfs remove-tree 4G
node --input-type=module - "$HERE" "$TOP" "$FILES" "$ROUNDS" <<'JS'
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
const [here, top, files, rounds] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const { ConfinedRoot, removeTreeIn } = await import(`${here}/dist/src/os/confined.js`);
const make = (name) => {
  for (let i = 0; i < files; i++) {
    const dir = `${top}/${name}/d${Math.floor(i / 200)}`;
    if (i % 200 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/f${i}`, 'x');
  }
  execFileSync('sync');
};
const ratios = [];
for (let round = 0; round < rounds; round++) {
  make('a');
  make('b');
  let t = performance.now();
  execFileSync('rm', ['-rf', `${top}/a`]);
  execFileSync('sync');
  const rm = performance.now() - t;
  const root = ConfinedRoot.open(top, { durable: 'at-end' });
  const dir = root.openDir([]);
  t = performance.now();
  removeTreeIn(dir, 'b');
  execFileSync('sync');
  const ours = performance.now() - t;
  dir.close();
  root.close();
  ratios.push(ours / rm);
  console.log(`${files} files: rm -rf ${(rm / 1000).toFixed(2)} s, removeTreeIn ${(ours / 1000).toFixed(2)} s: ${(ours / rm).toFixed(2)} x`);
}
ratios.sort((a, b) => a - b);
console.log(`removeTreeIn / rm -rf, median of ${rounds}: ${ratios[Math.floor(rounds / 2)].toFixed(2)} x`);
JS
