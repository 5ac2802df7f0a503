/**
 * The one reading of a number an admin writes, on the command line or in
 * sysprime.toml: plain decimal digits, nothing else. `parseInt` reads
 * `1e3` as 1 and `2.9` as 2, and `Number` reads `0x10`, `1e3` and ` 7 `;
 * for `prune --keep` either silently destroys environments.
 */
import { InvalidArgumentError } from 'commander';

export interface Range {
  min: number;
  max: number;
}

/** The value when it is a whole number in range, written as plain digits (a TOML integer), else undefined. */
export function wholeNumber(value: unknown, range: Range): number | undefined {
  let n: number;
  if (typeof value === 'string') {
    if (!/^[0-9]+$/.test(value)) return undefined;
    n = Number(value);
  } else if (typeof value === 'bigint') {
    n = Number(value);
  } else return undefined;
  return Number.isSafeInteger(n) && n >= range.min && n <= range.max ? n : undefined;
}

/** A commander argument parser for a whole-number option (a bad one is a usage error, exit 2). */
export function wholeNumberOption(range: Range): (text: string) => number {
  return (text) => {
    const n = wholeNumber(text, range);
    if (n === undefined) throw new InvalidArgumentError(`use a whole number from ${range.min} to ${range.max}, in plain digits.`);
    return n;
  };
}
