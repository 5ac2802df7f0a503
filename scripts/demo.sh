#!/usr/bin/env bash
# sysprime's main job on a throwaway pool: a loop-file Btrfs filesystem
# holding a small OS-like tree, adopted as the first environment.
# Nothing outside the pool is touched; the pool is removed at the end
# (KEEP=1 keeps it and prints where it is).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh"
# The runtime setup.sh installed (the Node.js LTS package.json pins) runs everything below.
export PATH="$here/node_modules/.bin:$PATH"

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

say "A package repository (sysprime's content-addressed store) with version 1 and 2 of the OS"
repo="$work/repo"
mkpkg() { # mkpkg DIR VERSION PORT
  local d="$1" v="$2" port="$3"
  mkdir -p "$d"/{usr/bin,usr/lib,usr/share/doc/demo,etc}
  printf 'PRETTY_NAME="Demo Linux %s"\nID=demo\nVERSION_ID=%s\n' "$v" "$v" > "$d/usr/lib/os-release"
  printf '#!/bin/sh\necho "demo %s"\n' "$v" > "$d/usr/bin/demo"; chmod 755 "$d/usr/bin/demo"
  echo "Demo Linux $v" > "$d/usr/share/doc/demo/README"
  printf '# demo service\nlisten = 127.0.0.1\n\n# network\nport = %s\n\n# capacity\nworkers = 2\n' "$port" > "$d/etc/demo.conf"
}
mkpkg "$work/pkg-1" 1 8080
mkpkg "$work/pkg-2" 2 9090
# The publisher's key; machines trust its public half ([update] trusted_keys).
"$here/bin/sysprime" key generate "$work/repo.key" --comment "demo repository"
node "$here/scripts/make-store-repo.mjs" --sign "$work/repo.key" "$repo" demo-os 1 "$work/pkg-1"

say "An OS-like tree in the subvolume @, as an installer leaves it (version 1)"
btrfs -q subvolume create "$top/@"
root="$top/@"
mkdir -p "$root"/{etc/default,var/log,var/lib,root,home,opt,srv,tmp,boot,usr/local}
cp -a "$work/pkg-1/." "$root/"
ln -s ../usr/lib/os-release "$root/etc/os-release"
echo demo-host > "$root/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\n' > "$root/etc/group"

cat > "$work/sysprime.toml" <<TOML
backend = "btrfs"

[btrfs]
top = "$top"

[state]
dir = "$top/sysprime-state"

[boot]
loader = "none"

[update]
method = "store"
repository = "$repo"
trusted_keys = ["$work/repo.key.pub"]
TOML
echo "configuration: $work/sysprime.toml"; cat "$work/sysprime.toml"

say "Adopt @ as the first environment (generation 0) and take its pristine snapshot"
sp init --adopt @ --name demo

say "The admin changes the running system by hand"
mnt="$work/mnt"
sp mount demo "$mnt" >/dev/null
sed -i 's/^workers = 2$/workers = 8/' "$mnt/etc/demo.conf"
echo "Welcome to the demo host" > "$mnt/etc/motd"
mkdir -p "$mnt/usr/local/bin"; printf '#!/bin/sh\necho local tool\n' > "$mnt/usr/local/bin/tool"; chmod 755 "$mnt/usr/local/bin/tool"
sp umount demo

say "Drift: what the admin changed since the pristine state"
sp drift || true

say "Version 2 of the OS is published"
node "$here/scripts/make-store-repo.mjs" --sign "$work/repo.key" "$repo" demo-os 2 "$work/pkg-2"

say "Stage generation 1 in the background: clone, update, snapshot, carry the admin's changes over"
sp stage

say "The environments"
sp list
sp list --json

say "Inside the new environment: the update and the admin's changes, merged"
sp mount gen-1 "$mnt" >/dev/null
echo "--- /usr/bin/demo says:"; sh "$mnt/usr/bin/demo"
echo "--- /etc/demo.conf (port from version 2, workers from the admin):"; cat "$mnt/etc/demo.conf"
echo "--- /etc/motd:"; cat "$mnt/etc/motd"
echo "--- /usr/local/bin/tool:"; sh "$mnt/usr/local/bin/tool"
echo "--- reintegration report:"; cat "$mnt"/var/lib/sysprime/reintegration/*.txt
sp umount gen-1

say "The running environment is unchanged"
sp mount demo "$mnt" >/dev/null
sh "$mnt/usr/bin/demo"
sp umount demo

say "Status"
sp status
