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
  dpkg-dev      # dpkg-deb for test packages and the Debian package
  util-linux mount
  mandoc man-db # man pages: lint in tests, `man -w` of the installed package
  lintian binutils # checking the Debian package
  chromium      # the drift page test renders it in a real browser
  zsh bash-completion # the completion scripts are tested in both shells
  faketime      # clock jumps in the fault tests (libfaketime moves the test process's clock)
  grub-common   # grub-editenv: the GRUB bootloader writes grubenv with it (tests use a scratch directory)
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

# Node.js 20 or later with npm comes with machines of this kind; Debian 12's own nodejs is 18, too old.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null; then
  echo "setup: sysprime needs Node.js 20 or later with npm (found: $(node --version 2>/dev/null || echo none)); install it from nodejs.org or your distribution's backports, then run this again" >&2
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

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
