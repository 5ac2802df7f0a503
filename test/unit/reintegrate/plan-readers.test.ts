/** `reintegrate --plan --json` shows no content digest of a file drift would hide. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planForReaders, type PlanAction, type ReintegrationPlan } from '../../../src/reintegrate/plan.js';
import { secretPatterns } from '../../../src/drift/content.js';
import type { ManifestEntry } from '../../../src/bart/types.js';

const file = (path: string, mode: number, contents: string): ManifestEntry => ({ path, type: 'F', size: 10, mode, uid: 0, gid: 0, mtime: 0, contents }) as unknown as ManifestEntry;
const dir = (path: string, mode: number): ManifestEntry => ({ path, type: 'D', size: 0, mode, uid: 0, gid: 0, mtime: 0 }) as unknown as ManifestEntry;
const merge = (path: string, mode: number, theirsMode = mode): PlanAction => ({
  path,
  action: 'merge',
  reason: 'both-changed',
  detail: 'changed by both',
  base: file(path, mode, `base-digest-${path}`),
  ours: file(path, mode, `ours-digest-${path}`),
  theirs: file(path, theirsMode, `theirs-digest-${path}`),
}) as unknown as PlanAction;

test('digests of files only root may read, below a closed directory, or named by [drift] secret are left out; others kept', () => {
  const plan: ReintegrationPlan = {
    version: 1,
    hash: 'xxh64',
    actions: [
      merge('/etc/shadow', 0o100640),
      merge('/etc/ssh/key', 0o100644, 0o100600),
      { path: '/root', action: 'copy', reason: 'ours-changed', detail: '', ours: dir('/root', 0o40700) } as unknown as PlanAction,
      merge('/root/notes', 0o100644),
      merge('/etc/app/token', 0o100644),
      merge('/etc/motd', 0o100644),
    ],
    counts: {},
  };
  const json = JSON.stringify(planForReaders(plan, secretPatterns(['/etc/app/token*'])));
  for (const p of ['/etc/shadow', '/etc/ssh/key', '/root/notes', '/etc/app/token']) assert.ok(!json.includes(`digest-${p}`), `${p}: a digest shown`);
  for (const side of ['base', 'ours', 'theirs']) assert.ok(json.includes(`${side}-digest-/etc/motd`), 'a world-readable file keeps its digests');
  assert.ok(JSON.stringify(plan).includes('ours-digest-/etc/shadow'), 'the plan itself is not changed');
});
