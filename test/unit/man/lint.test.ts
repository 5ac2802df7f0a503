/**
 * Every page in man/ is clean under Debian's `mandoc -T lint`, style
 * messages included. The only message let through is "referenced manual not
 * found": whether bart_manifest(4) or zfs(8) is installed depends on the
 * machine, not on the page.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';

const MAN = fileURLToPath(new URL('../../../../man/', import.meta.url));
const pages = readdirSync(MAN).filter((f) => /\.[1-8]$/.test(f));

const MACHINE_DEPENDENT = [/referenced manual not found/, /outdated mandoc\.db/];

test('the pages this suite expects are there', () => {
  for (const p of ['sysprime.8', 'sysprime-bart.8', 'sysprime.toml.5', 'sysprime-reintegrate.8']) assert.ok(pages.includes(p), `man/${p} is missing`);
});

for (const page of pages) {
  test(`mandoc -T lint: ${page}`, async () => {
    const r = await run('mandoc', ['-T', 'lint', '-W', 'style', join(MAN, page)], { allowFailure: true });
    const messages = `${r.stdout}${r.stderr}`
      .split('\n')
      .filter((l) => l.trim() !== '' && !MACHINE_DEPENDENT.some((re) => re.test(l)));
    assert.deepEqual(messages, [], `mandoc -T lint ${page}:\n${messages.join('\n')}`);
  });

  test(`renders without errors for man(1): ${page}`, async () => {
    const r = await run('mandoc', ['-T', 'utf8', '-W', 'error', join(MAN, page)], { allowFailure: true });
    assert.equal(r.exitCode, 0, r.stderr);
    const plain = r.stdout.replace(/.\x08/g, '');
    assert.match(plain, /^NAME$/m);
    assert.match(plain, /^SEE ALSO$/m);
  });
}
