// Browser tests of the web chat page: headless Chromium (playwright-core) against `llmux serve`
// in front of llmux-mock fakes. Run: `npm ci && npm test` in this directory (see README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './harness.mjs';

const MAIN_REPLY = [
  'Here is **llmux** in a nutshell:',
  '',
  '- one OpenAI-compatible API',
  '- many providers, with fallback',
  '',
  '| provider | streams |',
  '|---|---|',
  '| openai-compat | yes |',
  '| huggingchat | yes |',
  '',
  '```rust',
  'fn main() {',
  '    // say hello',
  '    println!("hello {}", 42);',
  '}',
  '```',
].join('\n');

const EVIL_REPLY = [
  'Look: <img src=x onerror="window.__pwned=1">',
  '<script>window.__pwned=2</script>',
  '[click me](javascript:window.__pwned=3)',
  '<a href="javascript:window.__pwned=4">raw link</a>',
  '<img src="https://tracker.invalid/pixel.png" alt="tracker">',
  '![remote](https://tracker.invalid/md.png)',
  '<iframe src="https://tracker.invalid/frame"></iframe>',
  '<div style="background:url(https://tracker.invalid/bg.png)" onclick="window.__pwned=5">styled</div>',
  '<svg><image href="https://tracker.invalid/svg.png"/></svg>',
  '<audio controls src="https://tracker.invalid/a.mp3"></audio>',
  '<audio controls src="data:audio/wav;base64,UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="></audio>',
  'end of evil',
].join('\n');

// an 8×8 PNG
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAg0lEQVR4nA3JIQGFIQxG0RfnDzFDAzQafQ2GEF+ImTVAo9dgdR7Hnt9HNnKQixQZ5CWL/H2cxhmcxREnOJdTnBfe8IEvXHjgFy/8hRoaaCGhQBcVerEbe7AXW+xgX3axX8zGHMzFFDOYl1nMF73RB33RRQ/6pRf9hTVsYAsTFtjFCvsDE7Jb4XNbnPwAAAAASUVORK5CYII=',
  'base64',
);

let fakes;
let gw;
let keyed;
let noUi;
let b;
const KEY = 'ui-test-gateway-key';

before(async () => {
  const [main, slow, evil, limited, hc, think] = await Promise.all([
    h.mock('mock-main', 'openai', ['--model', 'fake-model', '--model', 'vision-model', '--model', 'image-model',
      '--reply', MAIN_REPLY, '--reasoning', 'Thinking about the nutshell.', '--chunks', '6', '--chunk-delay-ms', '20']),
    h.mock('mock-slow', 'openai', ['--model', 'slow-model', '--reply', 'word '.repeat(200).trim(),
      '--chunks', '200', '--chunk-delay-ms', '100']),
    h.mock('mock-evil', 'openai', ['--model', 'evil-model', '--reply', EVIL_REPLY, '--chunks', '3']),
    h.mock('mock-limited', 'openai', ['--model', 'limited-model', '--rate-limit', '7']),
    h.mock('mock-hc', 'huggingchat', ['--reply', 'Hello from the fake HuggingChat', '--chunks', '3']),
    h.mock('mock-think', 'openai', ['--model', 'think-model', '--reasoning', 'first this, then that, and finally the rest',
      '--reply', 'Thought it through.', '--chunks', '8', '--chunk-delay-ms', '150']),
  ]);
  fakes = { main, slow, evil, limited, hc, think };
  const config = `
[providers.openai-compat.options]
image_models = ["image-model"]
vision_models = ["vision-model"]

[providers.huggingchat]
base_url = "${hc.url}/chat"
cookies = "hf-chat=fake-hf-chat-session"
options = { api = "v1" }

[instances.slow]
kind = "openai-compat"
base_url = "${slow.url}/v1"

[instances.evil]
kind = "openai-compat"
base_url = "${evil.url}/v1"

[instances.think]
kind = "openai-compat"
base_url = "${think.url}/v1"

[instances.limited]
kind = "openai-compat"
base_url = "${limited.url}/v1"
`;
  const upstream = ['--upstream', `${main.url}/v1`];
  [gw, keyed, noUi] = await Promise.all([
    h.gateway('llmux', config, upstream),
    h.gateway('llmux-keyed', config, upstream, { LLMUX_API_KEY: KEY }),
    h.gateway('llmux-no-ui', config, [...upstream, '--no-ui']),
  ]);
  b = await h.browser();
});

after(async () => {
  await b?.close();
  h.stopAll();
});

/** Fails with the page's console problems and the processes' logs. */
function assertClean(page) {
  assert.deepEqual(page.problems, [], `console/page errors:\n${page.problems.join('\n')}`);
}

async function pick(page, search, model) {
  await page.click('#model-button');
  await page.fill('#model-search', search);
  await page.click(`.model-item[data-model="${model}"]`);
  await page.waitForFunction((m) => document.getElementById('model-label').textContent.startsWith(m), model);
}

async function say(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

const lastAssistant = '.msg.assistant:last-of-type';

async function waitDone(page) {
  await page.waitForSelector(`${lastAssistant} .msg-actions`, { timeout: 20_000 });
}

test('assets: served without a key, strong ETags, 304, CSP, nosniff, HEAD, under 300 KB gzipped', async () => {
  const index = await fetch(`${keyed.url}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  const csp = index.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
  const etag = index.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]+"$/);
  const html = await index.text();
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, 'no inline script or style in the page');
  const again = await fetch(`${keyed.url}/`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  const head = await fetch(`${keyed.url}/chat`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('etag'), etag);
  for (const p of ['/', '/chat', '/ui/app.js']) {
    assert.equal((await fetch(`${noUi.url}${p}`)).status, 404, `--no-ui: ${p}`);
  }
  const api = await fetch(`${keyed.url}/v1/models`);
  assert.equal(api.status, 401);
  assert.equal((await api.json()).error.code, 'missing_api_key');

  const assets = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]);
  const modules = ['/ui/api.js', '/ui/store.js', '/ui/render.js', '/ui/vendor/marked.esm.js'];
  let total = gzipSync(Buffer.from(html)).length;
  for (const a of new Set([...assets, ...modules])) {
    const r = await fetch(`${keyed.url}${a}`);
    assert.equal(r.status, 200, a);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    if (a.endsWith('.js')) assert.match(r.headers.get('content-type'), /^text\/javascript/, a);
    if (a.endsWith('.css')) assert.match(r.headers.get('content-type'), /^text\/css/, a);
    total += gzipSync(Buffer.from(await r.arrayBuffer())).length;
  }
  console.log(`# page assets: ${total} bytes gzipped`);
  assert.ok(total < 300 * 1024, `assets weigh ${total} bytes gzipped`);
});

test('a message streams in and renders as Markdown (code highlighted + copy, table, list, reasoning collapsed)', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'fake', 'fake-model');
  await say(page, 'What is llmux?');
  await waitDone(page);
  const msg = page.locator(lastAssistant);
  await assert.doesNotReject(msg.locator('table td', { hasText: 'openai-compat' }).waitFor());
  assert.equal(await msg.locator('ul > li').count(), 2);
  assert.equal(await msg.locator('pre .code-bar button.copy-code').count(), 1);
  assert.ok(await msg.locator('pre code .tok-keyword').count() >= 1, 'keywords highlighted');
  assert.ok(await msg.locator('pre code .tok-string').count() >= 1, 'strings highlighted');
  assert.equal(await msg.locator('details.reasoning').getAttribute('open'), null, 'reasoning collapsed');
  assert.match(await msg.locator('details.reasoning .reasoning-text').textContent(), /Thinking about the nutshell/);
  assert.match(await msg.locator('.msg-meta').textContent(), /fake-model · openai-compat/);
  const sent = (await fakes.main.requests((r) => r.path === '/v1/chat/completions')).at(-1).body;
  assert.equal(sent.stream, true);
  assert.equal(sent.messages.at(-1).content, 'What is llmux?');
  await page.screenshot({ path: h.shotPath('desktop-light.png') });
  assertClean(page);
  await page.context().close();
});

test('the model picker groups by provider, searches, and shows health when /v1/providers has it', async () => {
  const page = await h.open(b, gw.url);
  // a gateway that reports health (another change may add it): the page must render it
  await page.context().route('**/v1/providers', async (route) => {
    const resp = await route.fetch();
    const json = await resp.json();
    for (const p of json.data) {
      if (p.id === 'openai-compat') p.health = { status: 'ok', latency_ms: 120 };
      if (p.id === 'limited') p.health = { status: 'down', error: 'rate limited' };
    }
    await route.fulfill({ response: resp, json });
  });
  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.click('#model-button');
  const groups = await page.locator('.model-group').evaluateAll((gs) => gs.map((g) => g.dataset.provider));
  for (const p of ['openai-compat', 'slow', 'evil', 'limited', 'huggingchat']) assert.ok(groups.includes(p), `${p} in ${groups}`);
  assert.match(await page.locator('.model-group[data-provider="openai-compat"] .badge.health.good').textContent(), /ok/);
  assert.match(await page.locator('.model-group[data-provider="limited"] .badge.health.bad').textContent(), /down/);
  assert.ok(await page.locator('.model-group[data-provider="openai-compat"] .model-item[data-model="image-model"] .badge', { hasText: 'image' }).count());
  await page.fill('#model-search', 'slow');
  assert.deepEqual(await page.locator('.model-item').evaluateAll((xs) => xs.map((x) => x.dataset.model)), ['slow-model']);
  await page.screenshot({ path: h.shotPath('picker-light.png') });
  await page.keyboard.press('Enter');
  assert.match(await page.locator('#model-label').textContent(), /^slow-model · slow/);
  assertClean(page);
  await page.context().close();
});

test('reasoning streams behind a "Thinking…" indicator and ends collapsed', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'think', 'think-model');
  await say(page, 'think first');
  await page.waitForSelector(`${lastAssistant} details.reasoning summary.thinking`, { timeout: 10_000 });
  assert.match(await page.locator(`${lastAssistant} details.reasoning summary`).textContent(), /Thinking…/);
  await waitDone(page);
  const details = page.locator(`${lastAssistant} details.reasoning`);
  assert.equal(await details.locator('summary').textContent(), 'Reasoning');
  assert.equal(await details.getAttribute('open'), null);
  assert.match(await details.locator('.reasoning-text').textContent(), /finally the rest/);
  assert.match(await page.locator(`${lastAssistant} .content`).textContent(), /Thought it through/);
  assertClean(page);
  await page.context().close();
});

test('switching model; an attached image reaches the vision model as a data URI; kept after reload', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'vision', 'vision-model');
  await page.setInputFiles('#file', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.waitForSelector('#attachments .chip img');
  await say(page, 'What is in this picture?');
  await waitDone(page);
  const sent = (await fakes.main.requests((r) => r.path === '/v1/chat/completions')).at(-1).body;
  assert.equal(sent.model, 'vision-model');
  const parts = sent.messages.at(-1).content;
  assert.ok(Array.isArray(parts), JSON.stringify(sent.messages.at(-1)));
  assert.deepEqual(parts[0], { type: 'text', text: 'What is in this picture?' });
  assert.equal(parts[1].type, 'image_url');
  assert.equal(parts[1].image_url.url, `data:image/png;base64,${PNG.toString('base64')}`);

  await page.reload();
  await page.waitForSelector('body[data-ready="1"]');
  await page.waitForSelector('.msg.user .msg-attachments img');
  assert.match(await page.locator('.msg.user .content').textContent(), /What is in this picture\?/);
  assert.match(await page.locator('#conversations .conv.active').textContent(), /What is in this picture/);
  assert.match(await page.locator('#model-label').textContent(), /^vision-model/);
  assertClean(page);
  await page.context().close();
});

test('paste, drop and audio attachments become image_url / input_audio parts', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'vision', 'vision-model');
  const png = PNG.toString('base64');
  await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const pasted = new DataTransfer();
    pasted.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
    document.getElementById('input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true, cancelable: true }));
    const dropped = new DataTransfer();
    dropped.items.add(new File([new Uint8Array([82, 73, 70, 70, 0, 0, 0, 0])], 'clip.wav', { type: 'audio/wav' }));
    document.querySelector('.messages').dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
  }, png);
  await page.waitForFunction(() => document.querySelectorAll('#attachments .chip').length === 2);
  await say(page, 'two files');
  await waitDone(page);
  const parts = (await fakes.main.requests((r) => r.path === '/v1/chat/completions')).at(-1).body.messages.at(-1).content;
  assert.deepEqual(parts.map((p) => p.type), ['text', 'image_url', 'input_audio']);
  assert.equal(parts[1].image_url.url, `data:image/png;base64,${png}`);
  assert.deepEqual(parts[2].input_audio, { data: 'UklGRgAAAAA=', format: 'wav' });
  assert.equal(await page.locator('.msg.user audio').count(), 1);
  assertClean(page);
  await page.context().close();
});

test('system prompt, temperature and web search reach the request; edit and resend; regenerate', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'fake', 'fake-model');
  await page.click('#open-settings');
  await page.fill('#system-prompt', 'Answer in one line.');
  await page.locator('#temperature').evaluate((r) => {
    r.value = '0.3';
    r.dispatchEvent(new Event('input', { bubbles: true }));
  });
  await page.click('#settings button[value="ok"]');
  await page.check('#web-search');
  await say(page, 'first try');
  await waitDone(page);
  const chats = () => fakes.main.requests((r) => r.path === '/v1/chat/completions');
  let sent = (await chats()).at(-1).body;
  assert.deepEqual(sent.messages[0], { role: 'system', content: 'Answer in one line.' });
  assert.equal(sent.temperature, 0.3);
  // web_search is a gateway field: it is not passed on as-is, so check the page's own request
  const bodies = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/chat/completions')) bodies.push(r.postDataJSON()); });

  await page.locator('.msg.user .msg-actions button[data-action="edit"]').click();
  await page.fill('.msg.user .edit-area', 'second try');
  await page.locator('.msg.user .msg-actions button', { hasText: 'Send' }).click();
  await waitDone(page);
  sent = (await chats()).at(-1).body;
  assert.deepEqual(sent.messages.map((m) => m.content), ['Answer in one line.', 'second try']);
  assert.equal(await page.locator('.msg').count(), 2);

  const before = (await chats()).length;
  await page.locator(`${lastAssistant} button[data-action="regenerate"]`).click();
  await page.waitForFunction(() => !document.querySelector('.msg.assistant .typing'));
  await waitDone(page);
  assert.equal((await chats()).length, before + 1);
  assert.deepEqual((await chats()).at(-1).body.messages.map((m) => m.content), ['Answer in one line.', 'second try']);
  assert.equal(await page.locator('.msg').count(), 2);
  assert.ok(bodies.length >= 2 && bodies.every((x) => x.web_search === true && x.stream === true), JSON.stringify(bodies));
  assertClean(page);
  await page.context().close();
});

test('conversations: new, rename, delete, export and import as JSON', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'fake', 'fake-model');
  await say(page, 'keep me');
  await waitDone(page);
  await page.click('#new-chat');
  await say(page, 'delete me');
  await waitDone(page);
  assert.equal(await page.locator('#conversations li').count(), 2);
  const first = page.locator('#conversations li', { hasText: 'keep me' });
  await first.locator('button[data-action="rename"]').click();
  await page.fill('#conversations input.rename', 'Renamed chat');
  await page.press('#conversations input.rename', 'Enter');
  await page.waitForSelector('#conversations li:has-text("Renamed chat")');
  const doomed = page.locator('#conversations li', { hasText: 'delete me' });
  await doomed.locator('button[data-action="delete"]').click();
  await doomed.locator('button[data-action="delete"]').click();
  await page.waitForFunction(() => document.querySelectorAll('#conversations li').length === 1);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  // the download is deleted with its context: keep a copy
  const file = h.shotPath('export.json');
  await download.saveAs(file);
  const exported = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(exported.conversations.length, 1);
  assert.equal(exported.conversations[0].title, 'Renamed chat');
  await page.context().close();

  const fresh = await h.open(b, gw.url);
  assert.equal(await fresh.locator('#conversations li').count(), 0);
  await fresh.setInputFiles('#import', file);
  await fresh.waitForSelector('#conversations li:has-text("Renamed chat")');
  await fresh.click('#conversations li .conv-title');
  assert.match(await fresh.locator('.msg.user .content').textContent(), /keep me/);
  assert.match(await fresh.locator('.msg.assistant .content').textContent(), /nutshell/);
  assertClean(fresh);
  await fresh.context().close();
});

test('a follow-up carries the provider conversation state (HuggingChat, pinned)', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'Qwen2.5-72B', 'Qwen/Qwen2.5-72B-Instruct');
  await page.check('#pin-provider');
  await say(page, 'first question');
  await waitDone(page);
  assert.match(await page.locator(lastAssistant).textContent(), /Hello from the fake HuggingChat/);
  await say(page, 'second question');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant .msg-actions').length === 2, null, { timeout: 20_000 });
  const reqs = await fakes.hc.requests((r) => r.method === 'POST');
  const created = reqs.filter((r) => /\/chat\/conversation\/?$/.test(r.path));
  const turns = reqs.filter((r) => /\/chat\/conversation\/[0-9a-f]+$/.test(r.path));
  assert.equal(created.length, 1, `one upstream conversation: ${JSON.stringify(reqs.map((r) => r.path))}`);
  assert.equal(turns.length, 2);
  assert.equal(turns[0].path, turns[1].path, 'the follow-up went to the same upstream conversation');
  assertClean(page);
  await page.context().close();
});

test('Stop (Esc) cancels mid-stream and the fake sees the disconnect', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'slow', 'slow-model');
  await say(page, 'talk slowly');
  await page.waitForFunction(() => {
    const c = document.querySelector('.msg.assistant:last-of-type .content');
    return c && c.textContent.split('word').length > 3;
  }, null, { timeout: 15_000 });
  assert.equal(await page.isVisible('#stop'), true);
  const during = (await fakes.slow.inspect()).open_connections;
  assert.ok(during >= 1);
  await page.keyboard.press('Escape');
  await page.waitForSelector(`${lastAssistant} .note`);
  assert.match(await page.locator(`${lastAssistant} .note`).textContent(), /Stopped/);
  const end = Date.now() + 10_000;
  let now = during;
  while (Date.now() < end && now >= during) {
    await new Promise((r) => setTimeout(r, 100));
    now = (await fakes.slow.inspect()).open_connections;
  }
  assert.ok(now < during, `the upstream connection was closed (${during} → ${now})`);
  const words = (await page.locator(`${lastAssistant} .content`).textContent()).split('word').length - 1;
  assert.ok(words < 200, `the answer stopped early (${words} words)`);
  assert.equal(await page.isVisible('#stop'), false);
  await new Promise((r) => setTimeout(r, 300));
  assert.match(gw.child.log, /client_closed/, 'the gateway logged the client going away');
  assertClean(page);
  await page.context().close();
});

test("an image model's picture appears and opens full size", async () => {
  const page = await h.open(b, gw.url);
  await page.check('#image-mode');
  await page.waitForFunction(() => document.getElementById('model-label').textContent.startsWith('image-model'));
  await say(page, 'a cat in a hat');
  await page.waitForSelector(`${lastAssistant} .generated img`, { timeout: 20_000 });
  const img = page.locator(`${lastAssistant} .generated img`);
  assert.match(await img.getAttribute('src'), /^data:image\/png;base64,/);
  assert.ok(await img.evaluate((i) => i.complete && i.naturalWidth > 0), 'the image decoded');
  const sent = (await fakes.main.requests((r) => r.path === '/v1/images/generations')).at(-1).body;
  assert.equal(sent.model, 'image-model');
  await img.click();
  assert.equal(await page.isVisible('#lightbox img'), true);
  await page.keyboard.press('Escape');
  assert.equal(await page.isVisible('#lightbox'), false);
  assertClean(page);
  await page.context().close();
});

test('a rate-limited provider shows its error and when to retry', async () => {
  const page = await h.open(b, gw.url, { allowHttp: [429] });
  await pick(page, 'limited', 'limited-model');
  await say(page, 'hello?');
  await page.waitForSelector(`${lastAssistant} .msg-error`, { timeout: 20_000 });
  const text = await page.locator(`${lastAssistant} .msg-error`).textContent();
  assert.match(text, /limited failed \(HTTP 429/);
  assert.match(text, /retry after 7 s/i);
  assert.match(text, /limited/);
  await page.screenshot({ path: h.shotPath('error-light.png') });
  assertClean(page);
  await page.context().close();
});

test('model-written HTML runs nothing and loads nothing remote', async () => {
  const page = await h.open(b, gw.url);
  await pick(page, 'evil', 'evil-model');
  await say(page, 'be evil');
  await waitDone(page);
  const msg = page.locator(lastAssistant);
  assert.match(await msg.textContent(), /end of evil/);
  await msg.locator('a', { hasText: 'click me' }).click();
  await msg.locator('a', { hasText: 'raw link' }).click();
  await msg.locator('div', { hasText: 'styled' }).last().click();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await msg.locator('script, iframe, svg, [onerror], [onclick], [style]').count(), 0);
  for (const a of await msg.locator('a[href]').all()) {
    assert.match(await a.getAttribute('href'), /^(https?:|mailto:|#)/);
  }
  assert.equal(await msg.locator('img[src]').count(), 0, 'no model-written image has a src');
  assert.ok(await msg.locator('a.remote-media').count() >= 3, 'remote images and audio became links');
  assert.equal(await msg.locator('audio[controls][src^="data:audio/wav"]').count(), 1, 'data: audio is playable');
  const remote = page.urls.filter((u) => !u.startsWith(gw.url) && !u.startsWith('data:'));
  assert.deepEqual(remote, [], 'no request left the gateway origin');
  assert.ok(!page.urls.some((u) => u === `${gw.url}/x`), 'the img src=x was not fetched');
  assertClean(page);
  await page.context().close();
});

// Chromium reports a CSP violation as soon as its HTML parser creates an inline handler or
// style attribute, even in an inert document (DOMParser, <template>): renderMarkdown must never
// let a parser see one, however the tag is written, and must give the text back unchanged.
test('the renderer never parses a handler or style attribute (no CSP report) and keeps the text', async () => {
  const page = await h.open(b, gw.url);
  const inputs = [
    '<img src=x onerror="window.__pwned=1">',
    '<img/onerror=window.__pwned=2 src=x>',
    '<img src="x"onerror="window.__pwned=3">',
    "<IMG SRC=x ONERROR='window.__pwned=4'>",
    '<img alt=">" onerror="window.__pwned=5" src=x>',
    '<div\tonclick="window.__pwned=6"\nstyle="color:red">tab</div>',
    '<details ontoggle="window.__pwned=7" open>toggle</details>',
    '<p style="color:red">red</p> <b title=">" style="color:red">bold</b>',
    '<style>p { color: red }</style>after the style element<base href="https://tracker.invalid/">',
    'Turn on the style, son: "on" and \'style\' / on',
    '[a link](https://example.com/on/style?q=on) and <a href="https://example.com/onboarding" title="turn on the style">raw</a>',
    "```js\nel.addEventListener('click', on); const s = ' on' + \" style\";\n```",
  ];
  const out = await page.evaluate(async (list) => {
    const { renderMarkdown } = await import('/ui/render.js');
    const violations = [];
    const record = (e) => violations.push(`${e.violatedDirective}: ${e.sample}`);
    document.addEventListener('securitypolicyviolation', record);
    const box = document.createElement('div');
    document.body.append(box);
    for (const md of list) {
      const el = document.createElement('div');
      box.append(el);
      renderMarkdown(el, md);
    }
    await new Promise((r) => setTimeout(r, 300));
    document.removeEventListener('securitypolicyviolation', record);
    const attrs = [...box.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => [a.name, a.value]));
    const res = {
      violations,
      pwned: window.__pwned,
      badAttrs: attrs.filter(([n]) => /^on|^style$|\uFDD0/i.test(n)).map(([n]) => n),
      marks: box.textContent.includes('\uFDD0') || attrs.some(([, v]) => v.includes('\uFDD0')),
      texts: [...box.children].map((e) => e.textContent.trim()),
      hrefs: [...box.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')),
      titles: [...box.querySelectorAll('a[title]')].map((a) => a.getAttribute('title')),
      code: box.querySelector('pre code')?.textContent,
      copy: box.querySelector('pre .copy-code')?.dataset.copy,
    };
    box.remove();
    return res;
  }, inputs);
  assert.deepEqual(out.violations, [], 'no CSP violation while rendering');
  assert.equal(out.pwned, undefined);
  assert.deepEqual(out.badAttrs, [], 'no handler or style attribute, no marked name left');
  assert.equal(out.marks, false, 'no marker left in text or attribute values');
  assert.equal(out.texts[5], 'tab');
  assert.equal(out.texts[6], 'toggle');
  assert.equal(out.texts[7], 'red bold');
  assert.equal(out.texts[8], 'after the style element', 'the <style> element ends where it ends');
  assert.equal(out.texts[9], 'Turn on the style, son: "on" and \'style\' / on');
  assert.deepEqual(out.hrefs, ['https://example.com/on/style?q=on', 'https://example.com/onboarding']);
  assert.deepEqual(out.titles, ['turn on the style']);
  const code = "el.addEventListener('click', on); const s = ' on' + \" style\";";
  assert.equal(out.code, `${code}\n`);
  assert.equal(out.copy, `${code}\n`);
  assertClean(page);
  await page.context().close();
});

test('without DOMPurify, model output is shown as text (fails closed)', async () => {
  // the sanitiser's file does not load: nothing the model writes may be parsed as HTML
  const page = await h.open(b, gw.url, {
    allowConsole: [/Failed to load resource: net::ERR_FAILED/],
    setup: (context) => context.route('**/ui/vendor/purify.min.js', (route) => route.abort('failed')),
  });
  assert.equal(await page.evaluate(() => typeof window.DOMPurify), 'undefined');
  await pick(page, 'evil', 'evil-model');
  await say(page, 'be evil');
  await waitDone(page);
  const content = page.locator(`${lastAssistant} .content`);
  assert.equal(await content.getAttribute('class'), 'content markdown plain');
  assert.equal(await content.locator('*').count(), 0, 'no element from the model');
  assert.equal(await content.textContent(), EVIL_REPLY);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.ok(!page.urls.some((u) => u === `${gw.url}/x` || u.includes('tracker.invalid')), 'nothing fetched');
  assertClean(page);
  await page.context().close();
});

test('the key prompt appears when the gateway has a key, and the key is used', async () => {
  const page = await h.open(b, keyed.url, { allowHttp: [401] });
  await page.waitForSelector('#key-dialog[open]');
  await page.screenshot({ path: h.shotPath('key-prompt-light.png') });
  await page.fill('#key-input', KEY);
  await page.click('#key-dialog button[value="ok"]');
  await page.waitForFunction(() => document.getElementById('model-label').textContent.includes('·'));
  assert.equal(await page.evaluate(() => localStorage.getItem('llmux.apiKey')), 'ui-test-gateway-key');
  // Shift+Enter is a new line, Enter sends
  await page.click('#input');
  await page.keyboard.type('with a key');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  await page.keyboard.press('Enter');
  await waitDone(page);
  assert.match(await page.locator(lastAssistant).textContent(), /nutshell/);
  const sent = (await fakes.main.requests((r) => r.path === '/v1/chat/completions')).at(-1);
  assert.equal(sent.body.messages.at(-1).content, 'with a key\nsecond line');
  assert.equal(JSON.stringify(sent.body).includes(KEY), false, 'the gateway key is not forwarded');
  assertClean(page);
  await page.context().close();
});

test('screenshots: desktop and phone, light and dark', async () => {
  for (const colorScheme of ['light', 'dark']) {
    for (const [name, viewport] of [['desktop', { width: 1280, height: 820 }], ['phone', { width: 390, height: 844 }]]) {
      const page = await h.open(b, gw.url, { viewport, colorScheme });
      await pick(page, 'fake', 'fake-model');
      await say(page, 'What is llmux?');
      await waitDone(page);
      if (name === 'phone') {
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `no horizontal scrolling at phone width (${overflow}px)`);
      }
      await page.screenshot({ path: h.shotPath(`${name}-${colorScheme}.png`) });
      assertClean(page);
      await page.context().close();
    }
  }
  if (process.env.LLMUX_UI_DOCS_SHOT) {
    mkdirSync(path.join(h.ROOT, 'docs'), { recursive: true });
    copyFileSync(h.shotPath('desktop-light.png'), path.join(h.ROOT, 'docs', 'screenshot.png'));
  }
});
