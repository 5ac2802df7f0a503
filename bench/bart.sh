#!/usr/bin/env bash
# Benchmark of `sysprime bart` against the usual tools, on one tree, warm cache.
#   bench/bart.sh [TREE]        (default /usr; needs `npm run build` first)
#   BART_CLI=path/to/bart-cli.js bench/bart.sh   measures another build of the bart verbs
# Times and peak memory come from /usr/bin/time; aide is installed from the
# distribution if missing (it needs root for that).
set -euo pipefail
TREE=${1:-/usr}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLI=(node "${BART_CLI:-$HERE/dist/bench/bart-cli.js}" bart)
WORK=$(mktemp -d /var/tmp/sysprime-bart-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
NPROC=$(nproc)

if ! command -v aide >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y aide >/dev/null
fi

# measure NAME CMD...: best of 3 wall-clock seconds, with the peak RSS and
# the CPU seconds (user + system, children included) of that run; CPU time
# says more than wall time when other work shares the cores.
declare -A SECS RSS CPU
measure() {
  local name=$1; shift
  local best='' rss='' cpu=''
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || true
    read -r s m u k < <(tail -n 1 "$WORK/time") || true
    if [[ -z $best ]] || awk "BEGIN{exit !($s < $best)}"; then best=$s; rss=$m; cpu=$(awk "BEGIN{print $u + $k}"); fi
  done
  SECS[$name]=$best
  RSS[$name]=$rss
  CPU[$name]=$cpu
  printf '%-28s %7.2f s %8d KB %7.2f s cpu\n' "$name" "$best" "$rss" "$cpu"
}

files=$(find "$TREE" -xdev -type f | wc -l)
bytes=$(du -sxb "$TREE" | cut -f1)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tree $TREE: $files files, $((bytes / 1000000)) MB; $(nproc) cores; $(uname -r); node $(node --version)"
# Warm the page cache.
find "$TREE" -xdev -type f -print0 | xargs -0 -P"$NPROC" -n 2000 cat >/dev/null 2>&1 || true

cat >"$WORK/aide.conf" <<CONF
database_out=file:$WORK/aide.db
gzip_dbout=no
report_url=stdout
Checks = p+i+n+u+g+s+m+c+sha256
$TREE Checks
CONF

measure 'find -printf (stat walk)' find "$TREE" -xdev -printf '%p %s %m %T@ %U %G %i\n'
measure "xxhsum -H64 -P$NPROC" bash -c "find '$TREE' -xdev -type f -print0 | xargs -0 -P$NPROC -n 2000 xxhsum -H64 2>/dev/null"
measure 'aide --init (sha256)' aide --init --config="$WORK/aide.conf"
measure 'bart create xxh64' "${CLI[@]}" create -R "$TREE" -o "$WORK/m-xxh64" --index
measure 'bart create xxh64 --no-acl' "${CLI[@]}" create -R "$TREE" --no-acl -o "$WORK/m-noacl"
measure 'bart create sha256' "${CLI[@]}" create -R "$TREE" --hash sha256 -o "$WORK/m-sha256"
measure 'bart create incremental' "${CLI[@]}" create -R "$TREE" --previous "$WORK/m-xxh64" -o "$WORK/m-incr"
# The incremental manifest must be the full one (date line aside).
if ! cmp -s <(grep -v '^! [A-Z][a-z]*day, ' "$WORK/m-xxh64") <(grep -v '^! [A-Z][a-z]*day, ' "$WORK/m-incr"); then
  echo "warning: the incremental manifest differs from the full one (did $TREE change during the run?)" >&2
fi
entries=$(grep -vc '^[!#]' "$WORK/m-xxh64")
measure "bart compare ($entries entries)" "${CLI[@]}" compare "$WORK/m-xxh64" "$WORK/m-incr"

ratio() { awk "BEGIN{printf \"%.2f\", ${SECS[$1]} / ${SECS[$2]}}"; }
echo
echo "xxh64 / parallel xxhsum:          $(ratio 'bart create xxh64' "xxhsum -H64 -P$NPROC")x   (target <= 1.5)"
echo "aide sha256 / xxh64:              $(ratio 'aide --init (sha256)' 'bart create xxh64')x   (target >= 10)"
echo "aide sha256 / sha256:             $(ratio 'aide --init (sha256)' 'bart create sha256')x   (target >= 4)"
echo "incremental / find -printf:       $(ratio 'bart create incremental' 'find -printf (stat walk)')x   (target <= 2)"
echo "compare:                          ${SECS[bart compare ($entries entries)]} s   (target < 1)"
peak=0; for k in "${!RSS[@]}"; do [[ $k == bart* ]] && (( RSS[$k] > peak )) && peak=${RSS[$k]}; done
echo "load average after:               $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peak memory of bart runs:         $((peak / 1024)) MB   (target < 300)"
