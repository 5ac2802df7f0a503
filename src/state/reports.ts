/**
 * Reintegration reports: what each reintegration into an environment did
 * (at staging, by hand, at first boot), or why a first-boot one failed. The
 * full report is also a file in the environment; the database keeps them so
 * `status` can name the latest of each environment.
 */
import type { Db } from './db.js';

/** Counts by outcome, or `{ error }` for a reintegration that failed as a whole. */
export type ReportSummary = Record<string, number | string>;

export interface Report {
  at: string;
  /** How the reintegration ran: `staging`, `manual`, `first-boot`, `first-boot-failed`. */
  kind: string;
  environment: string;
  summary: ReportSummary;
  /** The whole report, kept as JSON. */
  body: unknown;
}

export type ReportHeader = Omit<Report, 'body'>;

export function keepReport(db: Db, report: Report): void {
  db.prepare('INSERT INTO reports (at, kind, environment, summary, body) VALUES (?, ?, ?, ?, ?)').run(
    report.at,
    report.kind,
    report.environment,
    JSON.stringify(report.summary),
    JSON.stringify(report.body),
  );
}

/** The latest report of each environment, in the order they were kept. */
export function latestReports(db: Db): ReportHeader[] {
  const rows = db
    .prepare('SELECT at, kind, environment, summary FROM reports WHERE id IN (SELECT MAX(id) FROM reports GROUP BY environment) ORDER BY id')
    .all() as { at: string; kind: string; environment: string; summary: string }[];
  return rows.map((r) => ({ at: r.at, kind: r.kind, environment: r.environment, summary: JSON.parse(r.summary) as ReportSummary }));
}
