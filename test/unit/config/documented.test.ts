import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { KEYS } from '../../../src/config/schema.js';

const man = readFileSync(new URL('../../../../man/sysprime.toml.5', import.meta.url), 'utf8');

test('every configuration key is documented in sysprime.toml(5)', () => {
  const sections = new Map<string, string>();
  let current = '';
  for (const line of man.split('\n')) {
    const sh = /^\.SH \[(\w+)\]/.exec(line);
    if (sh) current = sh[1]!;
    else if (line.startsWith('.SH')) current = '';
    const key = /^\.B (\w+)$/.exec(line);
    if (key && sections.get(`${current}.${key[1]}`) === undefined) sections.set(current ? `${current}.${key[1]}` : key[1]!, line);
  }
  for (const key of Object.keys(KEYS)) assert.ok(sections.has(key), `${key} is not documented`);
});
