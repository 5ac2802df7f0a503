/** Content diffs stay cheap whatever the files: a text rewritten line by line is described, not diffed for hours. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeContent, MAX_DIFF_BYTES, MAX_DIFF_EDITS } from '../../../src/drift/content.js';
import type { Difference, ManifestEntry } from '../../../src/bart/index.js';

function trees(before: string, after: string): { root: string; d: Difference } {
  const root = mkdtempSync(join(tmpdir(), 'sysprime-content-'));
  for (const [side, text] of [['a', before], ['b', after]] as const) {
    mkdirSync(join(root, side, 'etc'), { recursive: true });
    writeFileSync(join(root, side, 'etc/app.conf'), text);
  }
  const entry = (size: number) => ({ path: '/etc/app.conf', type: 'F', size, mode: 0o644, uid: 0, gid: 0, mtime: 0, contents: 'x' }) as unknown as ManifestEntry;
  const d = {
    path: '/etc/app.conf',
    kind: 'modify',
    control: entry(before.length),
    test: entry(after.length),
    attributes: [{ name: 'contents', control: 'a', test: 'b' }],
  } as unknown as Difference;
  return { root, d };
}

test('a file rewritten line by line (under the size limit) is described in seconds, not diffed for hours', { timeout: 20_000 }, () => {
  // 30,000 distinct short lines each side, all different: about 300 KiB, below MAX_DIFF_BYTES.
  const lines = (p: string) => Array.from({ length: 30_000 }, (_, i) => `${p}${i}\n`).join('');
  const { root, d } = trees(lines('old '), lines('new '));
  try {
    assert.ok(lines('old ').length < MAX_DIFF_BYTES);
    const started = Date.now();
    const c = describeContent(d, join(root, 'a'), join(root, 'b'));
    assert.equal(c?.kind, 'too-many-changes');
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('an ordinary change is still shown as a diff', () => {
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}\n`);
  const changed = [...lines];
  for (let i = 0; i < MAX_DIFF_EDITS / 4; i++) changed[i * 8] = `edited ${i}\n`;
  const { root, d } = trees(lines.join(''), changed.join(''));
  try {
    const c = describeContent(d, join(root, 'a'), join(root, 'b'));
    assert.equal(c?.kind, 'text');
    assert.equal(c?.kind === 'text' && c.linesAdded, MAX_DIFF_EDITS / 4);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
