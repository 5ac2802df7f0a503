/**
 * Drift's live manifest three ways on one Btrfs environment of FILES files
 * with 1% of them changed since its pristine snapshot: a full walk (no
 * previous manifest), an incremental walk (the previous manifest made just
 * before the changes), and the fast path (btrfs send --no-data -p, then only
 * the listed paths read). Also times the send|receive step alone, through
 * memory and through a file. Run by bench/drift-fast-path.sh.
 *   node dist/bench/drift-fast-path.js TOP ENV_NAME GENERATION PHASE
 * PHASE `before` makes the previous manifest; `after` times everything.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBtrfsBackend } from '../src/backends/btrfs/index.js';
import { createManifest, defaultRules, formatEntry, formatIndex, formatManifest, applyIndex, lookupInManifest, parseManifest, type Manifest } from '../src/bart/index.js';
import { liveManifestFromChanges } from '../src/drift/changes.js';
import { run } from '../src/process/run.js';

const [top, name, gen, phase, stash] = process.argv.slice(2) as [string, string, string, string, string];
const generation = Number(gen);
const live = join(top, 'ROOT', name);
const pristinePath = join(top, 'ROOT', '.pristine', name);
const rules = defaultRules();

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t = process.hrtime.bigint();
  const out = await fn();
  console.log(`${what}: ${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(2)} s`);
  return out;
}

function save(m: Manifest, file: string): void {
  writeFileSync(`${file}.bart`, formatManifest(m), 'latin1');
  writeFileSync(`${file}.index`, formatIndex(m), 'latin1');
}
function load(file: string): Manifest {
  return applyIndex(parseManifest(readFileSync(`${file}.bart`)), readFileSync(`${file}.index`));
}

if (phase === 'before') {
  save((await createManifest({ root: pristinePath, rules })).manifest, join(stash, 'pristine'));
  save((await createManifest({ root: live, rules })).manifest, join(stash, 'previous'));
} else {
  const pristine = load(join(stash, 'pristine'));
  const previous = load(join(stash, 'previous'));
  const full = await timed('full walk', () => createManifest({ root: live, rules }));
  const incremental = await timed('incremental walk', () => createManifest({ root: live, rules, previous }));
  const backend = createBtrfsBackend({ top });
  const fast = await timed('fast path (send + patch)', () =>
    liveManifestFromChanges({ backend, name, generation, pristine: { manifest: pristine, path: pristinePath }, live, rules, hash: 'xxh64', previous: lookupInManifest(previous) }),
  );
  const fastNoPrevious = await timed('fast path, no previous manifest', () =>
    liveManifestFromChanges({ backend, name, generation, pristine: { manifest: pristine, path: pristinePath }, live, rules, hash: 'xxh64' }),
  );
  if (!fast.ok || !fastNoPrevious.ok) throw new Error('the fast path was refused');
  const same = (m: Manifest) => m.entries.map(formatEntry).join('\n') === full.manifest.entries.map(formatEntry).join('\n');
  console.log(`entries ${full.manifest.entries.length}; listed changes ${fast.listed}; read again ${fast.result.reread}; hashed ${fast.result.hashed} (${fastNoPrevious.result.hashed} without previous); incremental hashed ${incremental.hashed}`);
  console.log(`identical: incremental ${same(incremental.manifest)}, fast ${same(fast.result.manifest)}, fast without previous ${same(fastNoPrevious.result.manifest)}`);

  // The send|receive step alone: through node's memory, and through a file.
  const snap = join(top, 'ROOT', `.partial-${name}@bench`);
  await run('btrfs', ['subvolume', 'snapshot', '-r', live, snap]);
  try {
    await timed('send | receive --dump through memory', async () => {
      const s = await run('btrfs', ['send', '--no-data', '-q', '-p', pristinePath, snap], { binary: true });
      await run('btrfs', ['receive', '--dump'], { input: s.stdoutBuffer!, binary: true });
    });
    const dir = mkdtempSync(join(tmpdir(), 'sysprime-send-'));
    try {
      await timed('send -f FILE; receive --dump -f FILE', async () => {
        await run('btrfs', ['send', '--no-data', '-q', '-p', pristinePath, '-f', join(dir, 'stream'), snap]);
        await run('btrfs', ['receive', '--dump', '-f', join(dir, 'stream')], { binary: true });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await run('btrfs', ['subvolume', 'delete', snap]);
  }
}
