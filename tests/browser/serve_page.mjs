// Drives the page of `vcpclip serve` in Debian's headless chromium (tests/cli/test_serve_browser.cpp):
//   node serve_page.mjs URL IMAGE SCREENSHOT
// opens URL, uploads IMAGE, waits for the result, moves the threshold slider, saves SCREENSHOT
// and prints one JSON line: what the page shows (score text, its full value, decision), the
// mask pixel counts at the slider's ends and at the calibrated value, requests that left the
// server, and page errors.
import { chromium } from 'playwright-core';

const [url, image, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  const errors = [];
  const foreign = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(url) && !u.startsWith('data:') && !u.startsWith('blob:')) foreign.push(u);
  });
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById('model').textContent.startsWith('loading'));
  await page.setInputFiles('#file', image);
  await page.waitForFunction(() => document.body.dataset.results === '1', null, { timeout: 60000 });
  const maskCount = () => page.evaluate(() => {
    const c = document.getElementById('mask');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 0) ++n;
    return { set: n, total: d.length / 4 };
  });
  const setSlider = (v) => page.evaluate((v) => {
    const s = document.getElementById('threshold');
    s.value = String(v);
    s.dispatchEvent(new Event('input'));
  }, v);
  const calibrated = await maskCount();
  await setSlider(0);
  const atZero = await maskCount();
  await setSlider(1);
  const atOne = await maskCount();
  await page.click('#reset');
  const afterReset = await maskCount();
  const shown = await page.evaluate(() => ({
    score_text: document.getElementById('score').textContent,
    score_value: Number(document.getElementById('score').dataset.value),
    decision: document.getElementById('decision').textContent,
    history: document.querySelectorAll('#history li').length,
    overlay: document.getElementById('overlay').naturalWidth,
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ ...shown, mask: { calibrated, atZero, atOne, afterReset }, foreign, errors }));
} finally {
  await browser.close();
}
