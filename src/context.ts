/**
 * What every command that touches environments needs: the configuration, the
 * backend for this machine, and the state database. Built once per command.
 */
import { loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import type { Backend } from './backends/types.js';
import { selectBackend } from './backends/registry.js';
import { openState, type Db } from './state/db.js';
import { claimState } from './environments/state-owner.js';

export interface Context {
  config: Config;
  backend: Backend;
  db: Db;
  close(): Promise<void>;
}

export async function openContext(opts: { config?: string | undefined; probe?: boolean; claimState?: boolean } = {}): Promise<Context> {
  const config = loadConfig(opts.config);
  const backend = selectBackend(config);
  if (opts.probe !== false) await backend.probe();
  const ctx = contextOf(config, backend);
  try {
    await claimState(ctx, { takeOver: opts.claimState === true });
  } catch (err) {
    await ctx.close();
    throw err;
  }
  return ctx;
}

/** A context on a backend already chosen (openContext's, or a test's own), with the state database opened. */
export function contextOf(config: Config, backend: Backend): Context {
  const ctx: Context = {
    config,
    backend,
    db: openState(config.state.dir),
    async close() {
      // The database open now: init may have moved it to its home and opened it there.
      ctx.db.close();
      await backend.close?.();
    },
  };
  return ctx;
}
