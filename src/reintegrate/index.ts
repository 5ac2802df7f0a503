/**
 * Reintegration: carrying the admin's changes on generation N (Sys_N') into
 * generation N+1, merged with the update. Plan (pure), apply (writes), report.
 */
export { planReintegration, countActions, type ActionKind, type MetaPlan, type PlanAction, type PlanInput, type Reason, type ReintegrationPlan, type XattrPlan } from './plan.js';
export { planSinceStaging, changedPaths, type SinceStagingInput } from './since-staging.js';
export { applyPlan, sidelineName, SIDELINE_SUFFIX, type ApplyOptions } from './apply.js';
export { mergeText, isBinary, type MergeOutcome } from './merge.js';
export { mergeAccounts, accountKindOf, type AccountKind, type AccountMerge, type AccountNote } from './accounts.js';
export { renderReport, writeReport, reportSucceeded, REPORT_DIR, type Outcome, type ReintegrationReport, type ReportItem } from './report.js';
