/**
 * Staging with something done to the pool while the updater runs: an update
 * script that waits for the test once it has started, and a `stage` run in
 * the background around the test's action.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN } from '../../fixtures/cli.js';

/** An updater that waits for the test's signal once it has started, then writes version 2. */
export function slowUpdater(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
if [ -f "${dir}/slow" ]; then touch "${dir}/started"; while [ ! -f "${dir}/go" ]; do sleep 0.1; done; fi
echo 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

/** Run `stage` in the background; `during` runs once the updater has started; returns its exit code and stderr. */
export async function stageWith(config: string, dir: string, during: () => Promise<void>): Promise<{ code: number | null; stderr: string }> {
  writeFileSync(join(dir, 'slow'), '');
  const child = spawn(process.execPath, [BIN, '--config', config, 'stage'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  try {
    for (let i = 0; i < 600 && !existsSync(join(dir, 'started')); i++) await sleep(100);
    assert.ok(existsSync(join(dir, 'started')), 'the update started');
    await during();
    writeFileSync(join(dir, 'go'), '');
    return { code: await exited, stderr };
  } finally {
    child.kill('SIGKILL');
    for (const f of ['slow', 'started', 'go']) rmSync(join(dir, f), { force: true });
  }
}
