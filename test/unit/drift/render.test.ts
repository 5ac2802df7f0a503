/** The drift page and text name what an entry is: a FIFO or a device is not a "file". */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderDriftHtml } from '../../../src/drift/render-html.js';
import { renderDriftText } from '../../../src/drift/render-text.js';
import type { DriftItem, DriftReport } from '../../../src/drift/compute.js';

const item = (path: string, type: string): DriftItem => ({
  path,
  display: path,
  change: 'added',
  type,
  attributes: [],
  details: [],
  package: null,
  content: null,
  contents: null,
  secret: null,
});

const report: DriftReport = {
  environment: 'base',
  generation: 0,
  pristine: 'p',
  at: '2026-01-01T00:00:00Z',
  rules: 'r',
  hash: 'xxh64',
  counts: { added: 5, removed: 0, modified: 0 },
  items: [item('/etc/fifo', 'P'), item('/etc/sock', 'S'), item('/etc/blk', 'B'), item('/etc/chr', 'C'), item('/etc/f', 'F')],
  sharedData: { paths: [], items: [] },
  manifests: { pristine: null, live: null },
  verified: null,
};

test('the page labels FIFOs, sockets and devices', () => {
  const html = renderDriftHtml(report);
  const what = (path: string) => new RegExp(`<code>${path.replace(/\//g, '\\/')}</code> <span class="what">([^<]*)</span>`).exec(html)?.[1];
  assert.equal(what('/etc/fifo'), 'FIFO');
  assert.equal(what('/etc/sock'), 'socket');
  assert.equal(what('/etc/blk'), 'block device');
  assert.equal(what('/etc/chr'), 'character device');
  assert.equal(what('/etc/f'), 'file');
});

test('the text labels them too', () => {
  const text = renderDriftText(report, { color: false, diffs: false });
  assert.match(text, /\/etc\/fifo\s+FIFO/);
  assert.match(text, /\/etc\/chr\s+character device/);
});
