# Sourced by the Btrfs benchmarks: `scratch_btrfs NAME SIZE` makes a
# loop-file Btrfs of SIZE in a new directory $WORK under /var/tmp, mounted
# (noatime) at $TOP, and removes it when the script exits, whatever is
# mounted below $WORK by then (deepest first). `scratch_config` writes
# $WORK/sysprime.toml for it (no bootloader), with whatever is on its
# standard input appended.
scratch_btrfs() {
  WORK=$(mktemp -d "/var/tmp/sysprime-$1.XXXXXX")
  TOP=$WORK/top
  trap scratch_btrfs_cleanup EXIT
  truncate -s "$2" "$WORK/img"
  mkfs.btrfs -q "$WORK/img" >/dev/null 2>&1
  mkdir "$TOP"
  mount -o loop,noatime "$WORK/img" "$TOP"
}

scratch_btrfs_cleanup() {
  { grep -F " $WORK/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$WORK"
}

scratch_config() {
  {
    printf 'backend = "btrfs"\n[btrfs]\ntop = "%s"\n[state]\ndir = "%s/sysprime-state"\n[boot]\nloader = "none"\n' "$TOP" "$TOP"
    cat
  } > "$WORK/sysprime.toml"
}
