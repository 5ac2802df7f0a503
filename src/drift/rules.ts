/** Which rules a drift or reintegration run uses: the configured file, or the rules shipped for an OS root. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { parseRules, type Rules } from '../bart/index.js';
import { SysprimeError, messageOf } from '../errors.js';
import { asManifestPath } from '../environments/shared.js';

export const SHIPPED_RULES = fileURLToPath(new URL('../../../share/rules/default.rules', import.meta.url));

export interface LoadedRules {
  rules: Rules;
  /** Digest of the text: part of a saved manifest's identity. */
  digest: string;
  path: string;
}

/**
 * The rules, with `atRisk` (shared paths inside the root filesystem,
 * environments/shared.ts) checked whatever the file says: their files are
 * users' data, carried into each new environment, so they must be in the
 * manifests. The block comes last, so it wins over the file's own rules.
 */
export function loadRules(config: Config, atRisk: readonly string[] = []): LoadedRules {
  const path = config.bart.rules ?? SHIPPED_RULES;
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (err) {
    throw new SysprimeError('CONFIG', `cannot read the rules file ${path}: ${messageOf(err)}`, {
      hint: config.bart.rules ? 'fix [bart] rules in sysprime.toml' : 'the installation is incomplete; reinstall sysprime',
    });
  }
  if (atRisk.length > 0) {
    text += `\n# Shared paths inside the root filesystem: users' data, carried at staging and first boot.\n${atRisk.map(asManifestPath).join('\n')}\nCHECK all\nIGNORE dirmtime\n`;
  }
  return { rules: parseRules(text, path), digest: createHash('sha256').update(text).digest('hex').slice(0, 16), path };
}
