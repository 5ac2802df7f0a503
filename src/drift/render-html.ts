/**
 * Drift as one self-contained page (no network, no external files): a
 * summary by area and kind, a filterable list, and each text change as a
 * unified or side-by-side diff. It reads without JavaScript; the script only
 * filters and switches the diff view.
 */
import { typeLabel, type DriftItem, type DriftReport } from './compute.js';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The area a path belongs to, for the summary. */
export function areaOf(display: string): string {
  const m = /^\/(etc|usr\/local|usr|opt|root|srv|home|boot|var)(\/|$)/.exec(display);
  return m ? `/${m[1]}` : 'other';
}

function diffHtml(diff: string): string {
  const rows = diff.split('\n').map((line) => {
    const cls = line.startsWith('+++') || line.startsWith('---') ? 'h' : line.startsWith('+') ? 'a' : line.startsWith('-') ? 'r' : line.startsWith('@@') ? 'k' : 'c';
    return `<span class="l ${cls}">${esc(line) || ' '}</span>`;
  });
  return `<pre class="diff" data-diff="${esc(diff)}">${rows.join('\n')}</pre>`;
}

function itemHtml(i: DriftItem): string {
  const c = i.content;
  let body = '';
  if (c?.kind === 'text') body = diffHtml(c.diff);
  else if (c?.kind === 'binary') body = `<p class="note">Binary content: ${c.before ?? 0} bytes before, ${c.after ?? 0} bytes now.</p>`;
  else if (c?.kind === 'too-large') body = `<p class="note">Large file (${c.before ?? 0} → ${c.after ?? 0} bytes): not shown.</p>`;
  else if (c?.kind === 'too-many-changes') body = `<p class="note">Text with too many lines changed to show (${c.before ?? 0} → ${c.after ?? 0} bytes).</p>`;
  else if (c?.kind === 'unreadable') body = `<p class="note">Content could not be read: ${esc(c.reason)}</p>`;
  else if (c?.kind === 'hidden') body = `<p class="note">Content hidden: ${esc(c.reason)}.</p>`;
  const details = i.details
    .filter((d) => d.name !== 'contents')
    .map((d) => `<tr><th>${esc(d.name)}</th><td>${esc(d.before)}</td><td>${esc(d.after)}</td></tr>`)
    .join('');
  const table =
    (details ? `<table class="attrs"><tr><th></th><th>pristine</th><th>now</th></tr>${details}</table>` : '') +
    (i.sharedWith !== undefined ? `<p class="note">One store object with ${i.sharedWith.map((p) => `<code>${esc(p)}</code>`).join(', ')}: changed with it (<code>sysprime store verify --repair</code>).</p>` : '');
  const what = i.change === 'modified' ? i.attributes.join(', ') : typeLabel(i.type);
  return `<details class="item ${i.change}" data-path="${esc(i.display.toLowerCase())}" data-change="${i.change}" data-area="${esc(areaOf(i.display))}" data-pkg="${i.package ? 'yes' : 'no'}">
<summary><span class="badge ${i.change}">${i.change}</span> <code>${esc(i.display)}</code> <span class="what">${esc(what)}</span>${i.package ? ` <span class="pkg">${esc(i.package)}</span>` : ''}</summary>
${table}${body || (table ? '' : '<p class="note">No content change.</p>')}
</details>`;
}

const CSS = `
:root{--bg:#fff;--fg:#1d2329;--mut:#5b6670;--line:#d9dee3;--add:#e6ffec;--addf:#116329;--rem:#ffebe9;--remf:#a40e26;--mod:#fff8c5;--modf:#7d4e00;--hunk:#ddf4ff}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mut:#8d96a0;--line:#30363d;--add:#12261e;--addf:#7ee787;--rem:#2d1215;--remf:#ff7b72;--mod:#272115;--modf:#e3b341;--hunk:#121d2f}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
header,main{max-width:1200px;margin:auto;padding:12px 16px}header{padding-bottom:0}h1{font-size:1.3em;margin:.2em 0}.meta{color:var(--mut);font-size:.9em}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;min-width:110px}
.card b{display:block;font-size:1.4em}.filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;position:sticky;top:0;background:var(--bg);padding:8px 0;border-bottom:1px solid var(--line);z-index:1}
.filters input[type=search]{flex:1 1 220px;font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
.item{border:1px solid var(--line);border-radius:8px;margin:8px 0;overflow:hidden}.item summary{cursor:pointer;padding:8px 10px;display:flex;flex-wrap:wrap;gap:6px;align-items:center;list-style:none}.item summary::-webkit-details-marker{display:none}.item summary:before{content:"\\25B8";color:var(--mut);width:1em;flex:none}.item[open]>summary:before{content:"\\25BE"}
.item code{word-break:break-all}.what,.pkg{color:var(--mut);font-size:.85em}.pkg:before{content:"package "}
.badge{font-size:.75em;font-weight:600;border-radius:10px;padding:1px 8px;text-transform:uppercase}.badge.added{background:var(--add);color:var(--addf)}.badge.removed{background:var(--rem);color:var(--remf)}.badge.modified{background:var(--mod);color:var(--modf)}
pre.diff{margin:0;padding:6px 0;overflow-x:auto;font:12.5px/1.4 ui-monospace,monospace;border-top:1px solid var(--line);white-space:normal;display:grid;grid-template-columns:minmax(100%,max-content)}.l{display:block;padding:0 10px;white-space:pre}.l.a{background:var(--add)}.l.r{background:var(--rem)}.l.k{background:var(--hunk);color:var(--mut)}.l.h{font-weight:600}
.sbs{display:grid;grid-template-columns:1fr 1fr;font:12.5px/1.4 ui-monospace,monospace;border-top:1px solid var(--line);overflow-x:auto}.sbs span{white-space:pre;padding:0 8px;min-height:1.4em;overflow:hidden}.sbs .r{background:var(--rem)}.sbs .a{background:var(--add)}.sbs .k{grid-column:1/3;background:var(--hunk);color:var(--mut)}
table.attrs{border-collapse:collapse;margin:4px 10px 8px;font-size:.9em}table.attrs td,table.attrs th{border:1px solid var(--line);padding:2px 8px;text-align:left;font-family:ui-monospace,monospace}
.note{margin:6px 10px;color:var(--mut)}.hidden{display:none!important}#count{color:var(--mut)}
@media (max-width:600px){header,main{padding:8px 10px}.filters input[type=search]{flex-basis:100%}.card{min-width:0;flex:0 1 calc((100% - 16px) / 3)}.item summary code{flex:1 1 60%}}
`;

const SCRIPT = `
(function(){
var q=document.getElementById('q'),boxes=[].slice.call(document.querySelectorAll('input[data-kind]')),area=document.getElementById('area'),items=[].slice.call(document.querySelectorAll('.item')),count=document.getElementById('count'),sbs=document.getElementById('sbs');
function apply(){var t=q.value.toLowerCase(),on={},n=0;boxes.forEach(function(b){on[b.dataset.kind]=b.checked});
items.forEach(function(it){var ok=on[it.dataset.change]&&(!t||it.dataset.path.indexOf(t)>=0)&&(!area.value||it.dataset.area===area.value);it.classList.toggle('hidden',!ok);if(ok)n++});
count.textContent=n+' of '+items.length+' shown';}
function side(pre){var lines=pre.dataset.diff.split('\\n'),out=[],l=[],r=[];
function flush(){var m=Math.max(l.length,r.length);for(var i=0;i<m;i++){out.push(cell(l[i],'r'),cell(r[i],'a'))}l=[];r=[]}
function cell(s,c){var e=document.createElement('span');if(s!==undefined){e.textContent=s;e.className=c}return e}
lines.forEach(function(x){if(/^(\\+\\+\\+|---)/.test(x))return;if(x[0]==='-')l.push(x.slice(1));else if(x[0]==='+')r.push(x.slice(1));else{flush();if(x.slice(0,2)==='@@'){var h=cell(x,'k');out.push(h)}else{out.push(cell(x.slice(1),''),cell(x.slice(1),''))}}});flush();
var d=document.createElement('div');d.className='sbs';out.forEach(function(e){d.appendChild(e)});return d}
sbs.addEventListener('change',function(){document.querySelectorAll('pre.diff').forEach(function(p){var n=p.nextElementSibling;if(sbs.checked){if(!n||!n.classList.contains('sbs'))p.after(side(p));p.classList.add('hidden');p.nextElementSibling.classList.remove('hidden')}else{p.classList.remove('hidden');if(n&&n.classList.contains('sbs'))n.classList.add('hidden')}})});
q.addEventListener('input',apply);area.addEventListener('change',apply);boxes.forEach(function(b){b.addEventListener('change',apply)});apply();
})();`;

export function renderDriftHtml(r: DriftReport): string {
  const areas = new Map<string, { added: number; removed: number; modified: number }>();
  for (const i of r.items) {
    const a = areaOf(i.display);
    const c = areas.get(a) ?? { added: 0, removed: 0, modified: 0 };
    c[i.change]++;
    areas.set(a, c);
  }
  const areaCards = [...areas.entries()]
    .sort()
    .map(([a, c]) => `<div class="card"><span>${esc(a)}</span><b>${c.added + c.removed + c.modified}</b><span class="meta">+${c.added} −${c.removed} ~${c.modified}</span></div>`)
    .join('');
  const options = [...areas.keys()].sort().map((a) => `<option value="${esc(a)}">${esc(a)}</option>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Drift of ${esc(r.environment)} — sysprime</title><style>${CSS}</style></head>
<body><header><h1>Drift of <code>${esc(r.environment)}</code></h1>
<div class="meta">Against the pristine state of generation ${r.generation} (<code>${esc(r.pristine)}</code>), computed ${esc(r.at)} with ${esc(r.hash)} hashes and rules ${esc(r.rules)}.</div>
<div class="cards" id="summary"><div class="card"><span>added</span><b id="n-added">${r.counts.added}</b></div><div class="card"><span>removed</span><b id="n-removed">${r.counts.removed}</b></div><div class="card"><span>modified</span><b id="n-modified">${r.counts.modified}</b></div>${areaCards}</div>
</header><main>
<div class="filters"><input type="search" id="q" placeholder="Filter paths…" aria-label="Filter paths">
<label><input type="checkbox" data-kind="added" checked> added</label><label><input type="checkbox" data-kind="removed" checked> removed</label><label><input type="checkbox" data-kind="modified" checked> modified</label>
<select id="area" aria-label="Area"><option value="">all areas</option>${options}</select>
<label><input type="checkbox" id="sbs"> side by side</label><span id="count"></span></div>
${r.items.length === 0 ? '<p>No drift: the environment matches its pristine state under the rules.</p>' : r.items.map(itemHtml).join('\n')}
</main><script>${SCRIPT}</script></body></html>
`;
}
