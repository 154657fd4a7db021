// Headless Chromium for page checks: the Debian package chromium-headless-shell,
// driven through its command line (no browser download, no npm dependency).
// A page is loaded twice: as written, with the browser's console on stderr
// (any console message — a script error, a resource that failed to load —
// is reported), and as a copy with a probe script appended that measures the
// rendered DOM (every SVG's box and drawn elements) and writes its findings
// into the DOM that --dump-dom prints.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM_PACKAGE = 'chromium-headless-shell';
export const CHROMIUM_BINARY = '/usr/bin/chromium-headless-shell';

/** The browser binary (CHROMIUM_BIN overrides); throws naming the Debian package when it is missing. */
export function chromiumBinary(): string {
  const bin = process.env.CHROMIUM_BIN || CHROMIUM_BINARY;
  if (!existsSync(bin)) {
    throw new Error(`headless Chromium not found at ${bin}: install the Debian package ${CHROMIUM_PACKAGE} (apt-get install -y ${CHROMIUM_PACKAGE}) or set CHROMIUM_BIN`);
  }
  return bin;
}

function chromium(args: string[], timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'llm-epp-chromium-'));
  const base = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, '--enable-logging=stderr', '--v=0'];
  return new Promise((resolve, reject) => {
    execFile(chromiumBinary(), [...base, ...args], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      rmSync(profile, { recursive: true, force: true });
      if (err) reject(new Error(`${CHROMIUM_PACKAGE} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** The page's console messages in Chromium's stderr log ("…:INFO:CONSOLE…] "message", source: …"). */
export function consoleMessages(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /:CONSOLE[:(\]]/.test(l));
}

export interface SvgFacts {
  title: string;
  width: number;
  height: number;
  /** Bars, lines and dots drawn. */
  marks: number;
  /** Marks whose box leaves the svg's viewBox by more than a pixel. */
  outside: number;
}

export interface PageFacts {
  title: string;
  svgs: SvgFacts[];
  banners: number;
  verdict: string[];
  headings: string[];
  tables: number;
  scrollHeight: number;
}

// Runs in the browser (plain ES2020, no TypeScript); writes JSON into <pre id="probe-result">.
const PROBE = `<script>
(() => {
  const svgs = [...document.querySelectorAll('svg')].map((s) => {
    const vb = s.viewBox.baseVal;
    const box = s.getBoundingClientRect();
    const marks = [...s.querySelectorAll('rect:not(.band), polyline, circle')];
    let outside = 0;
    for (const m of marks) {
      const b = m.getBBox();
      if (b.x < vb.x - 1 || b.y < vb.y - 1 || b.x + b.width > vb.x + vb.width + 1 || b.y + b.height > vb.y + vb.height + 1) outside++;
    }
    const t = s.querySelector(':scope > title');
    return { title: t ? t.textContent : '', width: box.width, height: box.height, marks: marks.length, outside };
  });
  const out = {
    title: document.title,
    svgs,
    banners: document.querySelectorAll('.banner').length,
    verdict: [...document.querySelectorAll('.verdict p')].map((p) => p.textContent),
    headings: [...document.querySelectorAll('h1, h2')].map((h) => h.textContent),
    tables: document.querySelectorAll('table').length,
    scrollHeight: document.documentElement.scrollHeight,
  };
  const pre = document.createElement('pre');
  pre.id = 'probe-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`;

export interface RenderResult {
  facts: PageFacts;
  /** Console messages of the page as written. */
  console: string[];
  /** Console messages while probing (the probe's own errors show here). */
  probeConsole: string[];
  screenshot?: string;
}

/** Load an HTML file in headless Chromium: console messages, measured DOM facts and, when asked, a full-page screenshot. */
export async function renderPage(file: string, o: { screenshot?: string; width?: number } = {}): Promise<RenderResult> {
  const width = o.width ?? 1400;
  const plain = await chromium([`--window-size=${width},900`, '--dump-dom', pathToFileURL(file).href]);
  const probeDir = mkdtempSync(join(tmpdir(), 'llm-epp-probe-'));
  const probeFile = join(probeDir, 'page.html');
  writeFileSync(probeFile, readFileSync(file, 'utf8').replace('</body>', `${PROBE}\n</body>`));
  const probed = await chromium([`--window-size=${width},900`, '--dump-dom', pathToFileURL(probeFile).href]).finally(() => rmSync(probeDir, { recursive: true, force: true }));
  const m = /<pre id="probe-result">([^<]*)<\/pre>/.exec(probed.stdout);
  if (!m) throw new Error(`the probe wrote nothing; Chromium said:\n${probed.stderr}`);
  const facts = JSON.parse(m[1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&nbsp;/g, '\u00a0').replace(/&amp;/g, '&')) as PageFacts;
  const res: RenderResult = { facts, console: consoleMessages(plain.stderr), probeConsole: consoleMessages(probed.stderr) };
  if (o.screenshot) {
    const height = Math.min(16_000, Math.max(600, facts.scrollHeight));
    await chromium([`--window-size=${width},${height}`, `--screenshot=${o.screenshot}`, pathToFileURL(file).href]);
    if (!existsSync(o.screenshot)) throw new Error(`${CHROMIUM_PACKAGE} wrote no screenshot at ${o.screenshot}`);
    res.screenshot = o.screenshot;
  }
  return res;
}
