/** Which rules a drift or reintegration run uses: the configured file, or the rules shipped for an OS root. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { parseRules, type Rules } from '../bart/index.js';
import { SysprimeError, messageOf } from '../errors.js';

export const SHIPPED_RULES = fileURLToPath(new URL('../../../share/rules/default.rules', import.meta.url));

export interface LoadedRules {
  rules: Rules;
  /** Digest of the text: part of a saved manifest's identity. */
  digest: string;
  path: string;
}

export function loadRules(config: Config): LoadedRules {
  const path = config.bart.rules ?? SHIPPED_RULES;
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (err) {
    throw new SysprimeError('CONFIG', `cannot read the rules file ${path}: ${messageOf(err)}`, {
      hint: config.bart.rules ? 'fix [bart] rules in sysprime.toml' : 'the installation is incomplete; reinstall sysprime',
    });
  }
  return { rules: parseRules(text, path), digest: createHash('sha256').update(text).digest('hex').slice(0, 16), path };
}
