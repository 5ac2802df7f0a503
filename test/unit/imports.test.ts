import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/check-imports.mjs');

function check(dir?: string): { status: number | null; out: string } {
  const res = spawnSync(process.execPath, [SCRIPT, ...(dir === undefined ? [] : [dir])], { encoding: 'utf8' });
  return { status: res.status, out: res.stdout + res.stderr };
}

test('src/ has no import circle, no seam imports from the layer above it, the base from neither', () => {
  const { status, out } = check();
  assert.equal(status, 0, out);
  assert.match(out, /no circle, no upward import from a seam or the base/);
});

test('the import check finds circles and upward imports from a seam and from the base', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-imports-'));
  try {
    for (const d of ['backends/zfs', 'environments', 'os']) mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(join(dir, 'backends/zfs/index.ts'), "import { checkName } from '../../environments/names.js';\nexport const a = checkName;\n");
    writeFileSync(join(dir, 'environments/names.ts'), 'export function checkName(): void {}\n');
    writeFileSync(join(dir, 'os/a.ts'), "import type { B } from './b.js';\nexport type A = B;\n");
    writeFileSync(join(dir, 'os/b.ts'), "import {\n  type A,\n} from './a.js';\nexport type B = A | 1;\n");
    for (const d of ['state', 'drift']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'drift/compute.ts'), "export type Kind = 'added';\n");
    writeFileSync(join(dir, 'state/runs.ts'), "import type { Kind } from '../drift/compute.js';\nexport type K = Kind;\n");
    writeFileSync(join(dir, 'os/c.ts'), "// import { x } from './a.js';\nexport const c = await import('./c.js');\n");
    const { status, out } = check(dir);
    assert.equal(status, 1, out);
    assert.match(out, /^upward: backends\/zfs\/index\.ts imports environments\/names\.ts$/m);
    assert.match(out, /^upward: state\/runs\.ts imports drift\/compute\.ts$/m);
    assert.match(out, /^circle: os\/a\.ts <-> os\/b\.ts$/m);
    assert.match(out, /^circle: os\/c\.ts$/m);
    assert.doesNotMatch(out, /os\/c\.ts <->/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
