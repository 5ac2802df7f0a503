/**
 * What the admin says about an environment: a description (one line, shown
 * by `list` and in boot menu titles) and a pin (prune keeps it, destroy
 * refuses it without --force); and what sysprime says of one it made on its
 * own (the apt hook's mark, `auto`).
 *
 * Both are kept as backend metadata of the environment itself
 * (`org.sysprime:description` and `org.sysprime:pinned` on ZFS, the `meta`
 * of `ROOT/.sysprime/envs/<name>.json` on Btrfs), so they follow the
 * environment: a rename keeps them, a destroy removes them, and a clone
 * (create, stage) starts without them.
 */
import type { EnvironmentInfo } from '../backends/types.js';
import { SysprimeError } from '../errors.js';

/** Metadata keys (setMeta/`meta`), without the backend's namespace. */
export const DESCRIPTION_KEY = 'description';
export const PIN_KEY = 'pinned';
/**
 * What made the environment on its own, without the admin asking: `apt`
 * for the environment the apt hook makes before a package operation.
 * Retention counts these apart (`[retention] keep_auto`).
 */
export const AUTO_KEY = 'auto';
/** The value a pin is written with; any value read back counts as a pin (a hand-set one too). */
export const PIN_VALUE = 'yes';

/**
 * Characters, not bytes: a boot menu shows about 70 of them per line, and
 * 128 characters of UTF-8 (at most 512 bytes) fit every backend's limit.
 */
export const MAX_DESCRIPTION = 128;

/**
 * Not printable on one line: control characters (C0, DEL, C1: a newline would
 * end a BLS `title` line and start a directive of its own; an escape would
 * drive the admin's terminal), format characters (bidirectional overrides
 * would show a title other than the one written), surrogates, private use,
 * and the Unicode line and paragraph separators.
 */
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/u;
const NOT_PRINTABLE_ALL = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/gu;

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Any text made into a description sysprime can keep: every character that
 * is not printable becomes a space, runs of spaces one, and a text longer
 * than MAX_DESCRIPTION ends in "…" at that length.
 */
export function asDescription(text: string): string {
  const flat = text.replace(NOT_PRINTABLE_ALL, ' ').replace(/\s+/g, ' ').trim();
  const chars = [...flat];
  return chars.length <= MAX_DESCRIPTION ? flat : `${chars.slice(0, MAX_DESCRIPTION - 1).join('').trimEnd()}…`;
}

/** Why a description cannot be used, or null. Never quotes the text itself: it may hold what a terminal would act on. */
export function descriptionProblem(text: string): string | null {
  const chars = [...text];
  const bad = chars.findIndex((c) => NOT_PRINTABLE.test(c));
  if (bad >= 0) {
    const c = chars[bad]!;
    const what = c === '\n' || c === '\r' ? 'a line break' : /\p{Cc}/u.test(c) ? 'a control character' : 'a character that is not printable';
    return `it contains ${what} (${codePoint(c)} at character ${bad + 1})`;
  }
  const length = [...text.trim()].length;
  if (length > MAX_DESCRIPTION) return `it is ${length} characters long (at most ${MAX_DESCRIPTION})`;
  return null;
}

/**
 * The description to keep: the text without leading and trailing spaces,
 * or null when nothing is left (which clears it). A text that cannot be
 * used (a line break or a tab included, even at its end) is a usage error,
 * one line.
 */
export function checkDescription(text: string): string | null {
  const problem = descriptionProblem(text);
  if (problem !== null) throw new SysprimeError('USAGE', `the description cannot be used: ${problem}; write one line of printable text`);
  const trimmed = text.trim();
  return trimmed === '' ? null : trimmed;
}

/**
 * The environment's description, or null. A value someone set by hand
 * (`zfs set`, an edited metadata file) is shown with every character that
 * is not printable replaced, so a listing or a boot menu never carries it.
 */
export function descriptionOf(env: Pick<EnvironmentInfo, 'meta'>): string | null {
  const raw = env.meta[DESCRIPTION_KEY];
  if (raw === undefined) return null;
  const shown = raw.replace(NOT_PRINTABLE_ALL, '\uFFFD').trim();
  return shown === '' ? null : shown;
}

export function isPinned(env: Pick<EnvironmentInfo, 'meta'>): boolean {
  return env.meta[PIN_KEY] !== undefined;
}

/** What made the environment on its own (`apt`), or null when the admin made it. */
export function autoOf(env: Pick<EnvironmentInfo, 'meta'>): string | null {
  const raw = env.meta[AUTO_KEY];
  return raw === undefined ? null : raw.replace(NOT_PRINTABLE_ALL, '\uFFFD');
}

export function isAuto(env: Pick<EnvironmentInfo, 'meta'>): boolean {
  return env.meta[AUTO_KEY] !== undefined;
}
