// Loads one vcpclip report.html in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) and checks what a person at a bench would see:
//   - every number tagged data-src / data-ptr / data-fmt (src/eval/html.cpp) equals the value at
//     that JSON pointer of that file (parsed here, independently of the C++ writer);
//   - the page shows all of them: per kind, every metric of every class and the mean (eval, demo),
//     every image's score and decision (predict), every variant's means (ablate);
//   - every <img> loaded (naturalWidth > 0), and the pictures the run wrote are shown;
//   - no request left the report's folder (only file:// under it; http(s) is aborted and counted);
//   - no script error; predict's table sorts by score when its header is clicked;
// and saves a full-page screenshot.
// Usage: node check_report.mjs <eval|predict|ablate|demo> <report.html> <screenshot.png>
// Exit 0 = pass, 1 = failures (listed), 77 = cannot run here (no chromium or playwright-core;
// only outside CI: under CI=true that is exit 1).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const CHROMIUM = '/usr/bin/chromium';
const [kind, reportArg, shotArg] = process.argv.slice(2);
if (!kind || !reportArg || !shotArg) {
  console.error('usage: node check_report.mjs <eval|predict|ablate|demo> <report.html> <screenshot.png>');
  process.exit(2);
}

function cannotRun(reason) {
  const ci = process.env.CI === 'true';
  console.error(`${ci ? 'FAIL' : 'SKIP'}: ${reason} (scripts/test_deps.sh installs it)`);
  process.exit(ci ? 1 : 77);
}
if (!fs.existsSync(CHROMIUM)) cannotRun(`no ${CHROMIUM}`);
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  cannotRun(`playwright-core is not installed in tests/browser/node_modules (${e.message.split('\n')[0]})`);
}

const report = fs.realpathSync(reportArg);
const dir = path.dirname(report);
const base = pathToFileURL(dir).href + '/';
const failures = [];
const fail = (m) => failures.push(m);

// ---- JSON files the page names, and what the page must show of them
const jsonCache = new Map();
function readJson(src) {
  if (!jsonCache.has(src)) {
    const file = path.join(dir, src);
    jsonCache.set(src, fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined);
  }
  return jsonCache.get(src);
}
function atPointer(doc, ptr) {
  let v = doc;
  for (const raw of ptr.split('/').slice(1)) {
    const k = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (v === null || typeof v !== 'object' || !(k in v)) return undefined;
    v = v[k];
  }
  return v;
}
const NOT_METRICS = new Set(['name', 'label', 'num_images', 'num_anomalous', 'num_skipped', 'warnings', 'error',
  'classes', 'classes_total', 'images', 'images_total']);
function metricKeys(obj) {
  return Object.keys(obj).filter((k) => !NOT_METRICS.has(k) && (obj[k] === null || typeof obj[k] === 'number'));
}
function expectedMetrics(src) {
  const m = readJson(src);
  if (!m) { fail(`${src} is missing`); return []; }
  const out = [];
  m.classes.forEach((c, i) => metricKeys(c).forEach((k) => out.push([src, `/classes/${i}/${k}`])));
  metricKeys(m.mean).forEach((k) => out.push([src, `/mean/${k}`]));
  return out;
}
function expectedImagesOfIndex(prefix) {
  const idx = readJson(prefix + 'imgs/index.json');
  if (!idx) return [];
  const out = [];
  for (const c of idx.classes) {
    out.push(prefix + c.roc, prefix + c.pro);
    for (const s of c.strips || []) out.push(prefix + s.strip);
  }
  return out;
}
function expectations() {
  if (kind === 'eval') return { numbers: expectedMetrics('metrics.json'), images: expectedImagesOfIndex('') };
  if (kind === 'demo') {
    return {
      numbers: [...expectedMetrics('eval/metrics.json'), ...expectedMetrics('eval_untrained/metrics.json')],
      images: [...expectedImagesOfIndex('eval/'), ...expectedImagesOfIndex('eval_untrained/')],
    };
  }
  if (kind === 'predict') {
    const s = readJson('scores.json');
    const numbers = [], images = [];
    s.images.forEach((e, i) => {
      numbers.push(['scores.json', `/images/${i}/score`]);
      if ('decision' in e) numbers.push(['scores.json', `/images/${i}/decision`]);
      if ('normalized_score' in e) numbers.push(['scores.json', `/images/${i}/normalized_score`]);
      for (const f of ['heatmap', 'mask']) if (e[f]) images.push(e[f]);
    });
    return { numbers, images };
  }
  if (kind === 'ablate') {
    const s = readJson('summary.json');
    const numbers = [];
    s.variants.forEach((v, i) => Object.keys(v.summary).forEach((k) => {
      if (v.summary[k].mean !== null) numbers.push(['summary.json', `/variants/${i}/summary/${k}/mean`]);
      if (v.summary[k].std !== null) numbers.push(['summary.json', `/variants/${i}/summary/${k}/std`]);
    }));
    return { numbers, images: ['summary.png'] };
  }
  fail(`unknown kind '${kind}'`);
  return { numbers: [], images: [] };
}
const FORMATS = { pct2: [100, 2], f3: [1, 3], f4: [1, 4] };
function checkShown({ src, ptr, fmt, text }) {
  const doc = readJson(src);
  const where = `${src}#${ptr} shown as '${text}'`;
  if (doc === undefined) return fail(`${where}: the file is missing`);
  const v = atPointer(doc, ptr);
  if (v === undefined) return fail(`${where}: no such value in the file`);
  if (fmt === 'upper') {
    if (text !== String(v).toUpperCase()) fail(`${where}: the file says '${v}'`);
    return;
  }
  const f = FORMATS[fmt];
  if (!f) return fail(`${where}: unknown data-fmt '${fmt}'`);
  if (v === null) {
    if (text !== 'n/a') fail(`${where}: the file says null (expected 'n/a')`);
    return;
  }
  const [scale, dec] = f;
  if (!new RegExp(`^-?\\d+\\.\\d{${dec}}$`).test(text)) return fail(`${where}: expected ${dec} decimals`);
  const want = v * scale;
  if (Math.abs(parseFloat(text) - want) > 0.5 * 10 ** -dec + 1e-9 * Math.max(1, Math.abs(want)))
    fail(`${where}: the file says ${v} (${want.toFixed(dec + 3)} shown ×${scale})`);
}

// ---- the browser
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
let numbersChecked = 0, imagesLoaded = 0;
const requests = [];
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const inside = (u) => u.startsWith(base) || u.startsWith('data:') || u === 'about:blank';
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (inside(u)) return route.continue();
    fail(`request outside the report's folder (aborted): ${u}`);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('request', (r) => {
    requests.push(r.url());
    if (!inside(r.url())) fail(`request outside the report's folder: ${r.url()}`);
  });
  page.on('pageerror', (e) => fail(`script error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') fail(`console error: ${m.text()}`); });
  await page.goto(pathToFileURL(report).href, { waitUntil: 'load' });

  const imgs = await page.evaluate(() => Array.from(document.images).map((i) => ({
    src: i.getAttribute('src'), url: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0 })));
  for (const i of imgs) {
    if (i.ok) imagesLoaded++;
    else fail(`image did not load: ${i.src}`);
  }
  const shownUrls = new Set(imgs.map((i) => i.url));
  const want = expectations();
  for (const rel of want.images) {
    const u = new URL(rel.split('/').map(encodeURIComponent).join('/'), base).href;
    if (!shownUrls.has(u)) fail(`picture not shown: ${rel}`);
  }

  const shown = await page.evaluate(() => Array.from(document.querySelectorAll('[data-src][data-ptr]')).map((e) => ({
    src: e.getAttribute('data-src'), ptr: e.getAttribute('data-ptr'), fmt: e.getAttribute('data-fmt'),
    text: e.textContent.trim() })));
  for (const s of shown) { checkShown(s); numbersChecked++; }
  const shownKeys = new Set(shown.map((s) => `${s.src}#${s.ptr}`));
  for (const [src, ptr] of want.numbers) if (!shownKeys.has(`${src}#${ptr}`)) fail(`not shown: ${src}#${ptr}`);
  if (want.numbers.length === 0) fail('nothing to compare: the JSON files name no numbers');

  if (kind === 'predict') {
    // sorting: click "score" twice: ascending, then descending
    const scores = () => page.$$eval('table.images tbody tr', (rows) => rows.map((r) =>
      parseFloat(r.querySelector('[data-ptr$="/score"]').getAttribute('data-sort'))));
    const header = page.locator('table.images thead th', { hasText: /^score$/ });
    await header.click();
    const asc = await scores();
    await header.click();
    const desc = await scores();
    const sorted = (a, d) => a.every((v, i) => i === 0 || (d ? a[i - 1] >= v : a[i - 1] <= v));
    if (!sorted(asc, false) || !sorted(desc, true)) fail(`sorting by score: got ${asc} then ${desc}`);
    await page.reload({ waitUntil: 'load' });  // the screenshot shows the page as it opens
  }

  fs.mkdirSync(path.dirname(path.resolve(shotArg)), { recursive: true });
  await page.screenshot({ path: shotArg, fullPage: true });
} finally {
  await browser.close();
}

const outside = requests.filter((u) => !u.startsWith(base) && !u.startsWith('data:'));
console.log(`${kind}: ${numbersChecked} numbers checked against the JSON files, ${imagesLoaded} images loaded, ` +
  `${requests.length} requests (${outside.length} outside ${dir}); screenshot ${shotArg}`);
if (failures.length) {
  console.error(`${failures.length} failure(s) in ${report}:\n  ` + failures.slice(0, 40).join('\n  '));
  process.exit(1);
}
