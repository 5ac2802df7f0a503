/**
 * What a reintegration run did, path by path: applied, merged, conflicts,
 * skipped, unchanged and failed, each with its reason. As JSON for the
 * state database and as text for people, written into the new environment
 * under /var/lib/sysprime/reintegration/.
 */
import { displayPath, printable } from '../bart/types.js';
import type { ActionKind, Reason } from './plan.js';
import { withDirIn, writeFileIn } from '../os/confined.js';

export type Outcome = 'applied' | 'merged' | 'conflict' | 'skipped' | 'unchanged' | 'failed';

export const OUTCOMES: readonly Outcome[] = ['conflict', 'failed', 'merged', 'applied', 'skipped', 'unchanged'];

export interface ReportItem {
  /** Byte string, as in manifests. */
  path: string;
  action: ActionKind;
  reason: Reason;
  outcome: Outcome;
  /** Why, in one or two sentences. */
  detail: string;
  /** Where the admin's version is in the target (conflicts). */
  admin?: string;
  /** Where the update's version was saved (conflicts). */
  update?: string;
  /** Worth the admin's attention even though applied. */
  notice?: boolean;
  /** Other paths this item created or changed (parent directories, hard links). */
  touched?: string[];
}

export interface ReintegrationReport {
  version: 1;
  startedAt: string;
  finishedAt: string;
  targetRoot: string;
  items: ReportItem[];
  counts: Record<Outcome, number>;
  /** What the admin must know that is not one path's outcome (a masked first-boot unit). */
  warnings?: string[];
}

export function countOutcomes(items: readonly ReportItem[]): Record<Outcome, number> {
  const counts: Record<Outcome, number> = { applied: 0, merged: 0, conflict: 0, skipped: 0, unchanged: 0, failed: 0 };
  for (const i of items) counts[i.outcome]++;
  return counts;
}

/** Whether every path got what the plan said (conflicts are an expected result, failures are not). */
export function reportSucceeded(r: ReintegrationReport): boolean {
  return r.counts.failed === 0;
}

const HEADINGS: Record<Outcome, string> = {
  conflict: 'Conflicts (the admin\'s version is in place; the update\'s is beside it)',
  failed: 'Failed',
  merged: 'Merged',
  applied: 'Applied',
  skipped: 'Skipped',
  unchanged: 'Already in place',
};

export function renderReport(r: ReintegrationReport): string {
  const lines: string[] = [];
  lines.push(`sysprime reintegration report`);
  lines.push(`target:   ${r.targetRoot}`);
  lines.push(`started:  ${r.startedAt}`);
  lines.push(`finished: ${r.finishedAt}`);
  lines.push(OUTCOMES.map((o) => `${o} ${r.counts[o]}`).join(', '));
  if (r.warnings !== undefined && r.warnings.length > 0) {
    lines.push('', 'Warnings:');
    for (const w of r.warnings) lines.push(`  ${w}`);
  }
  // Users' files under shared paths would bury the admin's changes: they get a section of their own (conflicts and failures stay where they are seen).
  const sharedData = (i: ReportItem): boolean => i.reason === 'shared-data' && i.outcome !== 'failed' && i.outcome !== 'conflict';
  const sections: [string, ReportItem[]][] = OUTCOMES.map((o) => [HEADINGS[o], r.items.filter((i) => i.outcome === o && !sharedData(i))]);
  sections.push(["Shared data (users' files inside the root: the running system's version)", r.items.filter(sharedData)]);
  for (const [heading, items] of sections) {
    if (items.length === 0) continue;
    lines.push('', `${heading}:`);
    for (const i of items) {
      lines.push(`  ${displayPath(i.path).replace(/\n/g, '\\n')}${i.notice ? '  (!)' : ''}`);
      lines.push(`      ${i.action}: ${printable(i.detail)}`);
      if (i.admin !== undefined) lines.push(`      admin's version:  ${displayPath(i.admin).replace(/\n/g, '\\n')}`);
      if (i.update !== undefined) lines.push(`      update's version: ${displayPath(i.update).replace(/\n/g, '\\n')}`);
      for (const t of i.touched ?? []) lines.push(`      also: ${displayPath(t).replace(/\n/g, '\\n')}`);
    }
  }
  return lines.join('\n') + '\n';
}

export const REPORT_DIR = '/var/lib/sysprime/reintegration';

function stamp(iso: string): string {
  // 2024-05-01T10:20:30.123Z → 20240501T102030Z: sorts, and has no ':' for tools that dislike it.
  return iso.replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * Write the human report to /var/lib/sysprime/reintegration/<timestamp>.txt
 * inside the target, creating the directories (0755 root) and never
 * following a link the target may hold on the way. Returns the path inside
 * the target.
 */
export function writeReport(targetRoot: string, report: ReintegrationReport): string {
  const name = `${stamp(report.finishedAt)}.txt`;
  withDirIn(targetRoot, REPORT_DIR, { create: true }, (dir) => writeFileIn(dir, name, Buffer.from(renderReport(report), 'latin1'), 0o644));
  return `${REPORT_DIR}/${name}`;
}
