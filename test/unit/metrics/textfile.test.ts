/** The metrics file's text: Prometheus text format, labels escaped, absent values left out rather than made up. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMetrics } from '../../../src/metrics/textfile.js';

test('every value, with HELP and TYPE, and environment names escaped as labels', () => {
  const text = renderMetrics({
    running: { name: 'gen-"7"\\x', generation: 7 },
    staged: { name: 'gen-8', generation: 8 },
    driftPaths: 12,
    lastStage: { at: new Date('2026-12-05T04:00:00Z'), ok: true },
    health: 'bad',
    fallbacks: 1,
    failedBoots: 0,
  });
  assert.match(text, /^# HELP sysprime_running_generation .+\n# TYPE sysprime_running_generation gauge\nsysprime_running_generation\{environment="gen-\\"7\\"\\\\x"\} 7$/m);
  assert.match(text, /^sysprime_staged_generation\{environment="gen-8"\} 8$/m);
  assert.match(text, /^sysprime_drift_paths 12$/m);
  assert.match(text, /^sysprime_last_stage_timestamp_seconds 1796443200$/m);
  assert.match(text, /^sysprime_last_stage_success 1$/m);
  assert.match(text, /^sysprime_health_good 0$/m);
  assert.match(text, /^sysprime_health_fallbacks 1$/m);
  assert.ok(text.endsWith('\n'));
});

test('nothing staged, never staged, never checked: zero generations, and no made-up samples', () => {
  const text = renderMetrics({ running: null, staged: null, driftPaths: null, lastStage: null, health: null, fallbacks: 0, failedBoots: 0 });
  assert.match(text, /^sysprime_running_generation 0$/m);
  assert.match(text, /^sysprime_staged_generation 0$/m);
  for (const absent of ['sysprime_drift_paths', 'sysprime_last_stage', 'sysprime_health_good']) assert.doesNotMatch(text, new RegExp(absent));
});
