// Test harness: starts llmux-mock fakes and `llmux serve` in front of them, and headless
// Chromium through playwright-core. Binaries come from LLMUX_BIN / LLMUX_MOCK_BIN (default:
// $CARGO_TARGET_DIR or ../../../../target, debug profile).

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../../../..');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
export const LLMUX = process.env.LLMUX_BIN || path.join(targetDir, 'debug', 'llmux');
export const MOCK = process.env.LLMUX_MOCK_BIN || path.join(targetDir, 'debug', 'llmux-mock');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const SHOTS = process.env.LLMUX_UI_SHOTS || path.join(ROOT, 'target', 'ui-screenshots');

const children = [];

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawns `bin args`, keeping its output for failure reports. */
function start(name, bin, args, env = {}) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.log = '';
  child.name = name;
  child.stdout.on('data', (d) => { child.log += d; });
  child.stderr.on('data', (d) => { child.log += d; });
  children.push(child);
  return child;
}

async function waitHttp(url, child, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${child.name} exited early:\n${child.log}`);
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} did not answer ${url}:\n${child.log}`);
}

/** Starts `llmux-mock <kind> --record args` on a free port; returns `{port, url, requests()}`. */
export async function mock(name, kind, args) {
  const port = await freePort();
  const child = start(name, MOCK, [kind, '--port', String(port), '--record', ...args]);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/__mock/requests`, child);
  return {
    port,
    url,
    child,
    async inspect() {
      return (await fetch(`${url}/__mock/requests`)).json();
    },
    async requests(filter = () => true) {
      return (await this.inspect()).requests.filter(filter);
    },
  };
}

/** Starts `llmux serve` with `configToml` and extra args; returns `{url, child}`. */
export async function gateway(name, configToml, args = [], env = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmux-ui-'));
  const config = path.join(dir, 'llmux.toml');
  writeFileSync(config, configToml);
  const port = await freePort();
  const child = start(name, LLMUX, ['serve', '--config', config, '--port', String(port), ...args], {
    LLMUX_LOG: 'llmux_server::access=info',
    LLMUX_API_KEY: '',
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/health`, child);
  return { url, child, dir };
}

/** Headless Chromium (Playwright gives every launch a fresh temporary profile). */
export function browser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A fresh context + page that records console errors, page errors and every request URL.
 * `allowHttp` lists HTTP statuses whose "Failed to load resource" console lines are expected;
 * `allowConsole` more expected console lines (regexes); `setup(context)` runs before the page
 * loads (routes, init scripts).
 */
export async function open(b, url, { allowHttp = [], allowConsole = [], setup, viewport = { width: 1280, height: 820 }, colorScheme = 'light' } = {}) {
  const context = await b.newContext({ viewport, colorScheme });
  if (setup) await setup(context);
  const page = await context.newPage();
  page.problems = [];
  page.urls = [];
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const text = m.text();
    const expected = allowHttp.some((s) => text.includes(`status of ${s}`))
      || allowConsole.some((re) => re.test(text));
    if (!expected && m.type() === 'error') page.problems.push(`console: ${text}`);
  });
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => page.urls.push(r.url()));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]');
  return page;
}

export function stopAll() {
  for (const c of children) {
    if (c.exitCode === null) c.kill('SIGTERM');
  }
}

export function logs() {
  return children.map((c) => `--- ${c.name}\n${c.log}`).join('\n');
}

export function shotPath(name) {
  mkdirSync(SHOTS, { recursive: true });
  return path.join(SHOTS, name);
}

export function cleanup(dirs) {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
