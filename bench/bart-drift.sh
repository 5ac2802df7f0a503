#!/usr/bin/env bash
# The drift case: `bart create --previous` on a tree of 150,000 files when
# 1% of them changed since the previous manifest (what a drift report does
# every time it runs). The tree is generated under /var/tmp and removed.
#   bench/bart-drift.sh [FILES]     (default 150000; needs `npm run build` first)
set -euo pipefail
FILES=${1:-150000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLI=(node "$HERE/dist/bench/bart-cli.js" bart)
WORK=$(mktemp -d /var/tmp/sysprime-bart-drift.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/tree

# 500 files per directory, 1-16 KiB each (about 1.2 GB for 150,000 files).
node -e '
const fs = require("node:fs");
const [tree, files] = [process.argv[1], Number(process.argv[2])];
const block = Buffer.alloc(16384, "sysprime drift bench\n");
for (let i = 0; i < files; i++) {
  const d = `${tree}/d${Math.floor(i / 5000)}/e${Math.floor(i / 500) % 10}`;
  if (i % 500 === 0) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(`${d}/f${i}`, block.subarray(0, 1024 + ((i * 7919) % 15360)));
}' "$TREE" "$FILES"

best() { # best of 3 wall-clock seconds and the peak RSS of that run
  local best='' rss=''
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>&1 || true
    read -r s m <"$WORK/time"
    if [[ -z $best ]] || awk "BEGIN{exit !($s < $best)}"; then best=$s; rss=$m; fi
  done
  echo "$best $rss"
}

"${CLI[@]}" create -R "$TREE" --no-acl -o "$WORK/base" --index
# Change 1%: every hundredth file gets one more line.
find "$TREE" -type f -name 'f*00' -print0 | xargs -0 -n 1000 sh -c 'for f; do echo changed >>"$f"; done' sh
changed=$(find "$TREE" -type f -name 'f*00' | wc -l)
entries=$(grep -vc '^[!#]' "$WORK/base")

read -r fs frss < <(best find "$TREE" -xdev -printf '%p %s %m %T@ %U %G %i\n')
read -r is irss < <(best "${CLI[@]}" create -R "$TREE" --previous "$WORK/base" -o "$WORK/incr")
read -r ns nrss < <(best "${CLI[@]}" create -R "$TREE" --previous "$WORK/base" --no-acl -o "$WORK/incr")
read -r full frss2 < <(best "${CLI[@]}" create -R "$TREE" -o "$WORK/full")
echo "tree: $entries entries, $changed files changed; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-40s %6.2f s %7d KB\n' 'find -printf (stat walk)' "$fs" "$frss"
printf '%-40s %6.2f s %7d KB\n' 'bart create --previous (1% changed)' "$is" "$irss"
printf '%-40s %6.2f s %7d KB\n' 'bart create --previous --no-acl' "$ns" "$nrss"
printf '%-40s %6.2f s %7d KB\n' 'bart create (full, for reference)' "$full" "$frss2"
