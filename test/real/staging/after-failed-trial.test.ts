/**
 * Staging after a staged update failed its trial: staging builds on the
 * newest pristine state, the failed one, whose packages are already the
 * newest, so there is nothing to stage; `stage` says why and what to do,
 * and once the failed environment is destroyed it stages from the
 * generation before again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

let s: Scratch;
let dir: string;
const sp = (...args: string[]) => sysprime(args, { config: s.config });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-failed-trial-'));
  // The update brings version 2 once; after that there is nothing newer (exit 100).
  const script = join(dir, 'update.sh');
  writeFileSync(script, `#!/bin/sh\nv="$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n[ "$(cat "$v" 2>/dev/null)" = 2 ] && exit 100\necho 2 > "$v"\n`);
  chmodSync(script, 0o755);
  mkdirSync(join(dir, 'health.d', 'required'), { recursive: true });
  writeFileSync(join(dir, 'health.d', 'required', '10-app'), '#!/bin/sh\necho "app does not answer" >&2\nexit 1\n');
  chmodSync(join(dir, 'health.d', 'required', '10-app'), 0o755);
  s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n[health]\ndir = "${join(dir, 'health.d')}"\n[reboot]\ncommand = "true"\n`);
  assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
});
after(async () => {
  await s?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('nothing to stage on a failed generation says which failed and what to do; destroyed, staging starts again from the one before', async () => {
  const staged = await sp('stage', '--name', 'broken');
  assert.equal(staged.code, 0, staged.stderr);
  assert.equal((await sp('activate', 'broken')).code, 0);
  // Its boot fails its health checks.
  const health = await sp('boot-hook', 'health');
  assert.notEqual(health.code, 0);
  assert.match(health.stdout, /FAILED: required\/10-app/);

  const again = await sp('stage');
  assert.equal(again.code, 0, again.stderr);
  assert.match(
    again.stdout,
    /^up to date: nothing to update .*; generation 1, the newest pristine state, which staging builds on, failed \("broken" failed its health checks\): nothing newer to update to yet; destroy "broken" \(`sysprime destroy NAME`\) to stage from the generation before it again; no environment was made$/m,
  );

  assert.equal((await sp('activate', 'base')).code, 0);
  const destroyed = await sp('destroy', 'broken');
  assert.equal(destroyed.code, 0, destroyed.stderr);
  const fresh = await sp('--json', 'stage');
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.deepEqual([fresh.json<{ kind: string }>().kind, fresh.json<{ generation: number }>().generation], ['staged', 1], 'staged from generation 0 again');
});

test('nothing to stage on a generation that did not fail says only that', async () => {
  const r = await sp('stage');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^up to date: nothing to update \(the update command exited with 100\); no environment was made$/m);
});
