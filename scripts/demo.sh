#!/usr/bin/env bash
# sysprime's main job on a throwaway pool: a loop-file Btrfs filesystem
# holding a small OS-like tree, adopted as the first environment.
# Nothing outside the pool is touched; the pool is removed at the end
# (KEEP=1 keeps it and prints where it is).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"

work="$(mktemp -d /var/tmp/sysprime-demo.XXXXXX)"
top="$work/top"
img="$work/pool.img"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo; echo "kept: pool image $img mounted at $top; config $work/sysprime.toml"
    return
  fi
  grep -F " $work/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  umount "$top" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sp() { echo "+ sysprime $*"; "$here/bin/sysprime" --config "$work/sysprime.toml" "$@"; }

say "A throwaway Btrfs pool: $img"
truncate -s 1G "$img"
mkfs.btrfs -q "$img"
mkdir -p "$top"
mount -o loop "$img" "$top"

say "An OS-like tree in the subvolume @, as a distribution installer leaves it"
btrfs -q subvolume create "$top/@"
root="$top/@"
mkdir -p "$root"/{etc/default,usr/bin,usr/lib,usr/share/doc/demo,var/log,var/lib,root,home,opt,srv,tmp}
printf 'PRETTY_NAME="Demo Linux 1"\nID=demo\nVERSION_ID=1\n' > "$root/usr/lib/os-release"
ln -s ../usr/lib/os-release "$root/etc/os-release"
echo demo-host > "$root/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\n' > "$root/etc/group"
printf '# demo service\nlisten = 127.0.0.1\nport = 8080\nworkers = 2\n' > "$root/etc/demo.conf"
printf '#!/bin/sh\necho "demo 1"\n' > "$root/usr/bin/demo"; chmod 755 "$root/usr/bin/demo"
echo "Demo Linux" > "$root/usr/share/doc/demo/README"

cat > "$work/sysprime.toml" <<TOML
backend = "btrfs"

[btrfs]
top = "$top"

[state]
dir = "$top/sysprime-state"

[boot]
loader = "none"
TOML
echo "configuration: $work/sysprime.toml"; cat "$work/sysprime.toml"

say "Adopt @ as the first environment (generation 0) and take its pristine snapshot"
sp init --adopt @ --name demo

say "A second environment, a copy of the current one"
sp create before-experiment

say "The environments"
sp list
sp list --json

say "Status"
sp status
