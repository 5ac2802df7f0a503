/**
 * Which updater a configuration asks for. A plain list: each entry names its
 * method and builds its updater from the configuration.
 */
import type { Config } from '../config/schema.js';
import { SysprimeError } from '../errors.js';
import type { Updater } from './types.js';
import { createAptUpdater } from './apt/index.js';
import { createCommandUpdater } from './command/index.js';
import { createStoreUpdater } from './store/index.js';

interface UpdaterEntry {
  method: Config['update']['method'];
  create(config: Config): Updater;
}

/** Nothing is ever updated: staging with it makes no environment. */
function createNoneUpdater(): Updater {
  return {
    method: 'none',
    describe: () => 'no updater (update.method = "none")',
    probe: async () => undefined,
    apply: async () => ({ changed: false, packages: [], summary: 'nothing to update: update.method is "none"' }),
  };
}

export const UPDATERS: readonly UpdaterEntry[] = [
  { method: 'none', create: createNoneUpdater },
  { method: 'store', create: createStoreUpdater },
  { method: 'command', create: createCommandUpdater },
  { method: 'apt', create: createAptUpdater },
];

export function createUpdater(config: Config): Updater {
  const entry = UPDATERS.find((e) => e.method === config.update.method);
  if (entry === undefined) {
    throw new SysprimeError('CONFIG', `update.method = "${config.update.method}" is not available in this version of sysprime`, {
      hint: `use one of: ${UPDATERS.map((e) => e.method).join(', ')}`,
    });
  }
  return entry.create(config);
}
