#!/usr/bin/env bash
# Writes debian/copyright (machine-readable format) for the package: sysprime
# itself, the Node.js runtime shipped with it, and one paragraph per bundled
# npm module naming its license and the license file kept beside it.
#   packaging/copyright.sh NODE_MODULES_DIR NODE_BINARY
set -euo pipefail
MODULES=$1
NODE=$2
NODE_VERSION=$("$NODE" -p process.versions.node)

cat <<HEAD
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sysprime
Comment: The Node.js runtime and the npm modules below are shipped with
 sysprime (see README.Debian). Each module keeps its own license file in
 /usr/lib/sysprime/node_modules/<module>/.

Files: *
Copyright: 2025-2026 sysprime contributors
License: Expat

Files: usr/lib/sysprime/node
Copyright: Node.js contributors. All rights reserved.
 Joyent, Inc. and other Node contributors
Comment: Node.js $NODE_VERSION. Its binary also contains V8, libuv, OpenSSL,
 ICU, llhttp, zlib, c-ares, nghttp2 and other libraries under their own
 licenses; /usr/share/doc/sysprime/nodejs-LICENSE.gz is the complete text.
License: Expat and others
 See /usr/share/doc/sysprime/nodejs-LICENSE.gz.
HEAD

node - "$MODULES" <<'JS'
const { readdirSync, readFileSync, existsSync } = require('node:fs');
const { join } = require('node:path');
const root = process.argv[2];
const dirs = [];
for (const d of readdirSync(root)) {
  if (d.startsWith('@')) for (const s of readdirSync(join(root, d))) dirs.push(`${d}/${s}`);
  else dirs.push(d);
}
const spdx = { MIT: 'Expat', ISC: 'ISC', 'Apache-2.0': 'Apache-2.0', 'BSD-2-Clause': 'BSD-2-clause', 'BSD-3-Clause': 'BSD-3-clause' };
for (const d of dirs.sort()) {
  const pj = join(root, d, 'package.json');
  if (!existsSync(pj)) continue;
  const p = JSON.parse(readFileSync(pj, 'utf8'));
  const lic = String(p.license ?? 'UNKNOWN').replace(/[()]/g, '').split(/\s+OR\s+/).map((l) => spdx[l] ?? l).join(' or ');
  const file = readdirSync(join(root, d)).find((f) => /^(licen[sc]e|copying)/i.test(f));
  const author = typeof p.author === 'string' ? p.author : p.author?.name;
  process.stdout.write(`\nFiles: usr/lib/sysprime/node_modules/${d}/*\nCopyright: ${author ?? `the ${p.name} authors`}\nLicense: ${lic}\n`);
  process.stdout.write(` See ${file ? `/usr/lib/sysprime/node_modules/${d}/${file}` : `the ${p.name} ${p.version} package on npm`}.\n`);
}
JS

cat <<'TAIL'

License: Expat
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.

License: ISC
 Permission to use, copy, modify, and/or distribute this software for any
 purpose with or without fee is hereby granted, provided that the above
 copyright notice and this permission notice appear in all copies.
 .
 THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY
 SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER
 RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF
 CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN
 CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.

License: Apache-2.0
 On Debian systems, the complete text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

License: BSD-2-clause
 See the license file of the module named in its Files paragraph.

License: BSD-3-clause
 See the license file of the module named in its Files paragraph.
TAIL
