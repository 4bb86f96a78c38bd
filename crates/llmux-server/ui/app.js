// The llmux web chat page: wires the DOM to the gateway's public API (api.js), the browser's
// conversation store (store.js) and the Markdown renderer (render.js).

import * as api from './api.js';
import * as store from './store.js';
import { renderMarkdown } from './render.js';

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const SETTINGS = 'llmux.settings';
const CURRENT = 'llmux.current';

const state = {
  convs: [],
  conv: null,
  models: [],
  providers: [],
  settings: { model: '', provider: '', pinned: false, temperature: null, webSearch: false },
  busy: null, // AbortController of the request in flight
  attachments: [],
};

function loadSettings() {
  try {
    Object.assign(state.settings, JSON.parse(localStorage.getItem(SETTINGS) || '{}'));
  } catch {
    // a broken entry: defaults
  }
}

function saveSettings() {
  localStorage.setItem(SETTINGS, JSON.stringify(state.settings));
}

// --- models and providers -------------------------------------------------------------------

function providerById(id) {
  return state.providers.find((p) => p.id === id);
}

function modelInfo(model, provider) {
  const p = providerById(provider);
  const listed = state.models.find((m) => m.id === model && m.owned_by === provider)
    || state.models.find((m) => m.id === model);
  return {
    image: listed?.image || !!p?.image_models?.includes(model),
    vision: listed?.vision || !!p?.vision_models?.includes(model),
    audio: listed?.audio || !!p?.audio_models?.includes(model),
  };
}

/** Provider groups: every provider with its models, plus the models /v1/models adds. */
function groups() {
  const out = state.providers.map((p) => ({ provider: p, models: [...new Set(p.models || [])] }));
  for (const m of state.models) {
    let g = out.find((x) => x.provider.id === m.owned_by);
    if (!g) {
      g = { provider: { id: m.owned_by, label: m.owned_by, enabled: true }, models: [] };
      out.push(g);
    }
    if (!g.models.includes(m.id)) g.models.push(m.id);
  }
  return out.filter((g) => g.models.length)
    .sort((a, b) => Number(b.provider.enabled !== false) - Number(a.provider.enabled !== false));
}

function healthBadge(health) {
  if (!health || typeof health !== 'object') return null;
  const status = String(health.status ?? (health.ok === true ? 'ok' : health.ok === false ? 'down' : 'unknown'));
  const good = /^(ok|up|healthy|working)$/i.test(status);
  const warn = /^(degraded|slow|unknown|rate.?limited)$/i.test(status);
  const b = el('span', `badge health ${good ? 'good' : warn ? 'warn' : 'bad'}`, status);
  const details = Object.entries(health).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  b.title = details.join('\n');
  return b;
}

function renderModelList() {
  const q = $('model-search').value.trim().toLowerCase();
  const list = $('model-list');
  list.replaceChildren();
  let shown = 0;
  for (const g of groups()) {
    const p = g.provider;
    const providerHit = `${p.id} ${p.label || ''}`.toLowerCase().includes(q);
    const models = g.models.filter((m) => !q || providerHit || m.toLowerCase().includes(q));
    if (!models.length) continue;
    const group = el('div', 'model-group');
    group.dataset.provider = p.id;
    const head = el('div', 'model-group-head');
    head.append(el('span', 'provider-name', p.label && p.label !== p.id ? `${p.label} (${p.id})` : p.id));
    const h = healthBadge(p.health);
    if (h) head.append(h);
    if (p.enabled === false) head.append(el('span', 'badge', 'not routed'));
    if (p.needs_auth) head.append(el('span', 'badge', 'needs auth'));
    group.append(head);
    for (const m of models) {
      const item = el('button', 'model-item');
      item.type = 'button';
      item.setAttribute('role', 'option');
      item.dataset.model = m;
      item.dataset.provider = p.id;
      const selected = m === state.settings.model && p.id === state.settings.provider;
      item.setAttribute('aria-selected', String(selected));
      item.append(el('span', 'model-name', m));
      const info = modelInfo(m, p.id);
      if (info.image) item.append(el('span', 'badge', 'image'));
      if (info.vision) item.append(el('span', 'badge', 'vision'));
      if (info.audio) item.append(el('span', 'badge', 'audio'));
      group.append(item);
      shown++;
    }
    list.append(group);
  }
  if (!shown) list.append(el('p', 'muted pad', q ? 'No model matches.' : 'No models.'));
}

function updateModelLabel() {
  const { model, provider } = state.settings;
  $('model-label').textContent = model ? `${model} · ${provider}` : 'Choose a model';
  $('pin-name').textContent = provider || 'provider';
  $('pin-provider').checked = !!state.settings.pinned;
}

function selectModel(model, provider) {
  state.settings.model = model;
  state.settings.provider = provider;
  saveSettings();
  updateModelLabel();
  closePicker();
}

function openPicker() {
  $('model-panel').hidden = false;
  $('model-button').setAttribute('aria-expanded', 'true');
  renderModelList();
  $('model-search').focus();
}

function closePicker() {
  $('model-panel').hidden = true;
  $('model-button').setAttribute('aria-expanded', 'false');
}

async function loadModels() {
  try {
    const [models, providers] = await Promise.all([api.models(), api.providers()]);
    state.models = models;
    state.providers = providers;
  } catch (e) {
    if (e instanceof api.ApiError && e.needsKey) {
      askKey(e);
      return;
    }
    showBanner(`Cannot load the models: ${describe(e)}`);
    return;
  }
  const { model, provider } = state.settings;
  const known = groups().some((g) => g.provider.id === provider && g.models.includes(model));
  if (!known) {
    const first = state.models.find((m) => !m.image) || state.models[0];
    if (first) {
      state.settings.model = first.id;
      state.settings.provider = first.owned_by;
    }
  }
  updateModelLabel();
  renderModelList();
}

// --- key prompt -----------------------------------------------------------------------------

function askKey(err) {
  const d = $('key-dialog');
  $('key-reason').textContent = err?.code === 'invalid_api_key'
    ? 'The saved key was refused (invalid_api_key). Enter the gateway key again.'
    : 'Enter the key set with --api-key / LLMUX_API_KEY. It is kept in this browser and sent as a Bearer token.';
  $('key-input').value = '';
  if (!d.open) d.showModal();
}

// --- conversations --------------------------------------------------------------------------

async function refreshList() {
  state.convs = await store.all();
  const ul = $('conversations');
  ul.replaceChildren();
  for (const c of state.convs) {
    const li = el('li', c.id === state.conv?.id ? 'conv active' : 'conv');
    li.dataset.id = c.id;
    const open = el('button', 'conv-title', c.title || 'Untitled');
    open.type = 'button';
    open.dataset.action = 'open';
    const rename = el('button', 'btn icon small', '✎');
    rename.type = 'button';
    rename.dataset.action = 'rename';
    rename.title = 'Rename';
    rename.setAttribute('aria-label', `Rename ${c.title}`);
    const del = el('button', 'btn icon small', '✕');
    del.type = 'button';
    del.dataset.action = 'delete';
    del.title = 'Delete';
    del.setAttribute('aria-label', `Delete ${c.title}`);
    li.append(open, rename, del);
    ul.append(li);
  }
}

async function openConversation(id) {
  const c = state.convs.find((x) => x.id === id);
  if (!c) return;
  if (state.busy) state.busy.abort();
  state.conv = c;
  localStorage.setItem(CURRENT, c.id);
  $('system-prompt').value = c.system || '';
  renderMessages();
  await refreshList();
  document.body.classList.remove('sidebar-open');
}

async function newConversation() {
  if (state.busy) state.busy.abort();
  state.conv = store.create();
  localStorage.setItem(CURRENT, state.conv.id);
  $('system-prompt').value = '';
  renderMessages();
  await refreshList();
  document.body.classList.remove('sidebar-open');
  $('input').focus();
}

async function persist() {
  if (!state.conv || !state.conv.messages.length) return;
  localStorage.setItem(CURRENT, state.conv.id);
  try {
    await store.save(state.conv);
  } catch (e) {
    showBanner(`Could not save the conversation in this browser: ${e.message}`);
  }
  await refreshList();
}

function startRename(li) {
  const c = state.convs.find((x) => x.id === li.dataset.id);
  if (!c) return;
  const input = el('input', 'rename');
  input.value = c.title;
  input.setAttribute('aria-label', 'New title');
  li.querySelector('.conv-title').replaceWith(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (keep) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (keep && title) {
      c.title = title;
      if (state.conv?.id === c.id) state.conv.title = title;
      await store.save(state.conv?.id === c.id ? state.conv : c);
    }
    await refreshList();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') finish(true);
    if (e.key === 'Escape') {
      e.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
}

async function deleteConversation(li, button) {
  if (button.dataset.confirm !== '1') {
    button.dataset.confirm = '1';
    button.textContent = 'Delete?';
    setTimeout(() => {
      if (button.isConnected) {
        button.dataset.confirm = '';
        button.textContent = '✕';
      }
    }, 4000);
    return;
  }
  await store.remove(li.dataset.id);
  if (state.conv?.id === li.dataset.id) {
    state.conv = store.create();
    renderMessages();
  }
  await refreshList();
}

async function exportConversations() {
  const blob = new Blob([await store.exportAll()], { type: 'application/json' });
  const a = el('a');
  a.href = URL.createObjectURL(blob);
  a.download = `llmux-conversations-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

async function importConversations(file) {
  try {
    const n = await store.importText(await file.text());
    showBanner(`Imported ${n} conversation${n === 1 ? '' : 's'}.`, 'info');
  } catch (e) {
    showBanner(`Import failed: ${e.message}`);
  }
  await refreshList();
}

// --- messages -------------------------------------------------------------------------------

function renderMessages() {
  const box = $('messages');
  box.replaceChildren();
  const msgs = state.conv?.messages || [];
  if (!msgs.length) {
    const empty = el('div', 'empty');
    empty.append(el('h1', '', 'llmux'), el('p', 'muted', 'Every provider behind this gateway, in one chat. Pick a model above and say something.'));
    box.append(empty);
    return;
  }
  msgs.forEach((m, i) => box.append(messageElement(m, i)));
  box.scrollTop = box.scrollHeight;
}

function lastIndex(role) {
  const msgs = state.conv.messages;
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i].role === role) return i;
  return -1;
}

function messageElement(m, i) {
  const box = el('article', `msg ${m.role}`);
  box.dataset.index = String(i);
  const meta = el('div', 'msg-meta');
  meta.append(el('span', 'who', m.role === 'user' ? 'You' : 'Assistant'));
  if (m.provider || m.model) meta.append(el('span', 'muted', [m.model, m.provider].filter(Boolean).join(' · ')));
  box.append(meta);
  if (m.attachments?.length) {
    const att = el('div', 'msg-attachments');
    for (const a of m.attachments) att.append(attachmentPreview(a));
    box.append(att);
  }
  if (m.role === 'assistant') {
    const details = el('details', 'reasoning');
    details.hidden = !m.reasoning;
    const thinking = m.pending && !m.content;
    details.append(el('summary', thinking ? 'thinking' : '', thinking ? 'Thinking…' : 'Reasoning'), el('div', 'reasoning-text', m.reasoning || ''));
    box.append(details);
  }
  const content = el('div', m.role === 'user' ? 'content plain' : 'content markdown');
  if (m.role === 'user') content.textContent = m.content;
  else renderMarkdown(content, m.content);
  box.append(content);
  if (m.images?.length) {
    const imgs = el('div', 'generated');
    for (const src of m.images) {
      const img = el('img', 'zoomable');
      img.src = src;
      img.alt = m.prompt || 'generated image';
      imgs.append(img);
    }
    box.append(imgs);
  }
  if (m.pending && !m.content && !m.reasoning && !m.images) box.append(el('div', 'typing', 'Waiting for the provider…'));
  if (m.stopped) box.append(el('div', 'muted note', 'Stopped.'));
  if (m.error) box.append(errorElement(m.error));
  if (!m.pending) {
    const actions = el('div', 'msg-actions');
    const add = (action, label) => {
      const b = el('button', 'btn small', label);
      b.type = 'button';
      b.dataset.action = action;
      actions.append(b);
    };
    add('copy', 'Copy');
    if (m.role === 'user') add('edit', 'Edit');
    if (m.role === 'assistant' && i === lastIndex('assistant')) add('regenerate', 'Regenerate');
    box.append(actions);
  }
  return box;
}

function attachmentPreview(a) {
  if (a.kind === 'image') {
    const img = el('img', 'thumb zoomable');
    img.src = a.url;
    img.alt = a.name;
    return img;
  }
  const audio = el('audio', 'thumb-audio');
  audio.controls = true;
  audio.src = a.url;
  audio.title = a.name;
  return audio;
}

function errorElement(err) {
  const box = el('div', 'msg-error');
  box.setAttribute('role', 'alert');
  // status 200: the stream had begun when the provider failed
  const status = err.status === 200 ? 'during the stream' : err.status ? `HTTP ${err.status}` : 'no answer';
  const head = [status, err.code].filter(Boolean).join(' · ');
  const named = err.provider && (err.pinned || String(err.message).includes(err.provider));
  box.append(el('strong', '', named ? `${err.provider} failed (${head})` : `Request failed (${head})`));
  box.append(el('div', 'error-message', err.message));
  if (err.retryAfter != null) {
    const at = new Date(err.at + err.retryAfter * 1000);
    box.append(el('div', 'retry', `Rate limited: retry after ${err.retryAfter} s (at ${at.toLocaleTimeString()}).`));
  }
  return box;
}

function updateMessage(i) {
  const old = $('messages').querySelector(`article[data-index="${i}"]`);
  const box = $('messages');
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const fresh = messageElement(state.conv.messages[i], i);
  // keep the reasoning open if the user opened it
  const wasOpen = old?.querySelector('details.reasoning')?.open;
  if (wasOpen) fresh.querySelector('details.reasoning').open = true;
  if (old) old.replaceWith(fresh);
  else box.append(fresh);
  if (stick) box.scrollTop = box.scrollHeight;
}

let frame = 0;
function scheduleUpdate(i) {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    updateMessage(i);
  });
}

// --- sending --------------------------------------------------------------------------------

function wireMessage(m) {
  if (m.role === 'assistant') return { role: 'assistant', content: m.images?.length ? `(generated an image: ${m.prompt || ''})` : m.content };
  if (!m.attachments?.length) return { role: 'user', content: m.content };
  const parts = [];
  if (m.content) parts.push({ type: 'text', text: m.content });
  for (const a of m.attachments) {
    if (a.kind === 'image') parts.push({ type: 'image_url', image_url: { url: a.url } });
    else parts.push({ type: 'input_audio', input_audio: { data: a.url.split(',')[1] || '', format: a.format } });
  }
  return { role: 'user', content: parts };
}

function requestBody() {
  const { model, provider, pinned, temperature, webSearch } = state.settings;
  const messages = [];
  const system = state.conv.system?.trim();
  if (system) messages.push({ role: 'system', content: system });
  for (const m of state.conv.messages) {
    if (m.pending || m.error || (m.role === 'assistant' && !m.content && !m.images?.length)) continue;
    messages.push(wireMessage(m));
  }
  const body = { model, messages };
  const p = providerById(provider);
  if (provider && (pinned || p?.enabled === false)) body.provider = provider;
  if (state.conv.state) body.conversation = state.conv.state;
  if (webSearch) body.web_search = true;
  if (temperature != null) body.temperature = temperature;
  return body;
}

function setBusy(controller) {
  state.busy = controller;
  $('stop').hidden = !controller;
  $('send').disabled = !!controller;
}

function failureOf(e) {
  if (e instanceof api.ApiError) {
    const { provider, pinned } = state.settings;
    return { status: e.status, code: e.code, message: e.message, retryAfter: e.retryAfter, at: Date.now(), provider, pinned };
  }
  return { status: 0, code: 'network', message: `The gateway could not be reached: ${e.message}`, at: Date.now() };
}

function describe(e) {
  return e instanceof api.ApiError ? `${e.message} (HTTP ${e.status}${e.code ? `, ${e.code}` : ''})` : e.message;
}

async function runAssistant() {
  const conv = state.conv;
  const body = requestBody();
  const reply = { role: 'assistant', content: '', reasoning: '', pending: true, model: state.settings.model, provider: state.settings.provider };
  conv.messages.push(reply);
  const i = conv.messages.length - 1;
  updateMessage(i);
  const controller = new AbortController();
  setBusy(controller);
  try {
    const result = await api.streamChat(body, {
      signal: controller.signal,
      on: (d) => {
        if (d.content) reply.content += d.content;
        if (d.reasoning) reply.reasoning += d.reasoning;
        if (d.provider) {
          reply.provider = d.provider;
          reply.model = d.model || reply.model;
        }
        if (state.conv === conv) scheduleUpdate(i);
      },
    });
    if (result.conversation != null) conv.state = result.conversation;
  } catch (e) {
    if (e.name === 'AbortError') reply.stopped = true;
    else {
      reply.error = failureOf(e);
      if (e instanceof api.ApiError && e.needsKey) askKey(e);
    }
  } finally {
    reply.pending = false;
    setBusy(null);
    if (frame) {
      cancelAnimationFrame(frame);
      frame = 0;
    }
    if (state.conv === conv) updateMessage(i);
    await persist();
  }
}

async function runImage(prompt) {
  const conv = state.conv;
  const { model, provider, pinned } = state.settings;
  const reply = { role: 'assistant', content: '', pending: true, model, provider, prompt };
  conv.messages.push(reply);
  const i = conv.messages.length - 1;
  updateMessage(i);
  const controller = new AbortController();
  setBusy(controller);
  try {
    const body = { model, prompt, response_format: 'b64_json', n: 1 };
    if (provider && (pinned || providerById(provider)?.enabled === false)) body.provider = provider;
    const r = await api.generateImage(body, controller.signal);
    reply.images = (r.data || []).map((d) => d.b64_json ? `data:${sniff(d.b64_json)};base64,${d.b64_json}` : d.url).filter((u) => /^data:image\//.test(u || ''));
    reply.provider = r.provider || provider;
    reply.model = r.model || model;
    if (!reply.images.length) reply.content = 'The provider returned no image this page can show.';
  } catch (e) {
    if (e.name === 'AbortError') reply.stopped = true;
    else {
      reply.error = failureOf(e);
      if (e instanceof api.ApiError && e.needsKey) askKey(e);
    }
  } finally {
    reply.pending = false;
    setBusy(null);
    if (state.conv === conv) updateMessage(i);
    await persist();
  }
}

function sniff(b64) {
  if (b64.startsWith('/9j/')) return 'image/jpeg';
  if (b64.startsWith('R0lG')) return 'image/gif';
  if (b64.startsWith('UklG')) return 'image/webp';
  return 'image/png';
}

async function send() {
  if (state.busy) return;
  const input = $('input');
  const text = input.value.trim();
  if (!text && !state.attachments.length) return;
  if (!state.settings.model) {
    showBanner('Choose a model first.');
    return;
  }
  const conv = state.conv;
  if (!conv.messages.length) conv.title = (text || state.attachments[0]?.name || 'New chat').slice(0, 60);
  const imageMode = $('image-mode').checked;
  conv.messages.push({ role: 'user', content: text, attachments: imageMode ? [] : state.attachments });
  input.value = '';
  autosize();
  state.attachments = [];
  renderAttachments();
  renderMessages();
  if (imageMode) await runImage(text);
  else await runAssistant();
}

async function regenerate() {
  if (state.busy) return;
  const msgs = state.conv.messages;
  const i = lastIndex('assistant');
  if (i < 0) return;
  const prompt = msgs[i].prompt;
  msgs.splice(i);
  // the upstream conversation already holds the old answer: start it afresh
  state.conv.state = null;
  renderMessages();
  if (prompt !== undefined) await runImage(prompt);
  else await runAssistant();
}

function startEdit(article) {
  if (state.busy) return;
  const i = Number(article.dataset.index);
  const m = state.conv.messages[i];
  const area = el('textarea', 'edit-area');
  area.value = m.content;
  area.setAttribute('aria-label', 'Edit the message');
  const save = el('button', 'btn primary small', 'Send');
  save.type = 'button';
  const cancel = el('button', 'btn small', 'Cancel');
  cancel.type = 'button';
  const bar = el('div', 'msg-actions');
  bar.append(save, cancel);
  article.querySelector('.content').replaceWith(area);
  article.querySelector('.msg-actions').replaceWith(bar);
  area.focus();
  cancel.addEventListener('click', () => updateMessage(i));
  const resend = async () => {
    m.content = area.value.trim();
    state.conv.messages.splice(i + 1);
    state.conv.state = null;
    renderMessages();
    await runAssistant();
  };
  save.addEventListener('click', resend);
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      resend();
    }
  });
}

// --- attachments ----------------------------------------------------------------------------

const AUDIO_FORMATS = { 'audio/mpeg': 'mp3', 'audio/mp3': 'mp3', 'audio/wav': 'wav', 'audio/x-wav': 'wav', 'audio/wave': 'wav' };

function readFile(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

async function addFiles(files) {
  for (const f of files) {
    const kind = f.type.startsWith('image/') ? 'image' : f.type.startsWith('audio/') ? 'audio' : '';
    if (!kind) {
      showBanner(`${f.name}: only images and audio can be attached.`);
      continue;
    }
    const url = await readFile(f);
    const format = kind === 'audio' ? AUDIO_FORMATS[f.type] || f.type.split('/')[1] : undefined;
    state.attachments.push({ kind, name: f.name || `${kind}`, mime: f.type, url, format });
  }
  renderAttachments();
}

function renderAttachments() {
  const box = $('attachments');
  box.replaceChildren();
  state.attachments.forEach((a, i) => {
    const chip = el('div', 'chip');
    chip.append(a.kind === 'image' ? Object.assign(el('img', 'chip-thumb'), { src: a.url, alt: '' }) : el('span', '', '♪'));
    chip.append(el('span', 'chip-name', a.name));
    const x = el('button', 'btn icon small', '✕');
    x.type = 'button';
    x.setAttribute('aria-label', `Remove ${a.name}`);
    x.addEventListener('click', () => {
      state.attachments.splice(i, 1);
      renderAttachments();
    });
    chip.append(x);
    box.append(chip);
  });
}

// --- misc UI --------------------------------------------------------------------------------

function showBanner(text, kind = 'error') {
  const b = el('div', `banner ${kind}`, text);
  b.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  document.querySelector('.main').prepend(b);
  setTimeout(() => b.remove(), 8000);
}

function autosize() {
  const t = $('input');
  t.style.height = 'auto';
  t.style.height = `${Math.min(t.scrollHeight, 240)}px`;
}

function openLightbox(src) {
  $('lightbox-img').src = src;
  $('lightbox').hidden = false;
}

function updateTemperature() {
  const t = state.settings.temperature;
  $('temperature').value = t ?? 1;
  $('temperature-value').textContent = t == null ? 'default' : String(t);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = label; }, 1200);
}

function bind() {
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('input').addEventListener('input', autosize);
  $('input').addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) {
      e.preventDefault();
      addFiles(files);
    }
  });
  $('stop').addEventListener('click', () => state.busy?.abort());
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    if (!$('lightbox').hidden) $('lightbox').hidden = true;
    else if (!$('model-panel').hidden) closePicker();
    else if (state.busy) state.busy.abort();
  });
  $('file').addEventListener('change', (e) => {
    addFiles([...e.target.files]);
    e.target.value = '';
  });
  let depth = 0;
  document.addEventListener('dragenter', (e) => {
    if (!e.dataTransfer?.types?.includes('Files')) return;
    depth++;
    $('drop-hint').hidden = false;
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) $('drop-hint').hidden = true;
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    $('drop-hint').hidden = true;
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) addFiles(files);
  });

  $('model-button').addEventListener('click', () => ($('model-panel').hidden ? openPicker() : closePicker()));
  $('model-search').addEventListener('input', renderModelList);
  $('model-search').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      $('model-list').querySelector('.model-item')?.click();
    }
  });
  $('model-list').addEventListener('click', (e) => {
    const item = e.target.closest('.model-item');
    if (item) selectModel(item.dataset.model, item.dataset.provider);
  });
  document.addEventListener('click', (e) => {
    if (!$('model-panel').hidden && !e.target.closest('.picker')) closePicker();
  });
  $('pin-provider').addEventListener('change', (e) => {
    state.settings.pinned = e.target.checked;
    saveSettings();
  });
  $('web-search').checked = !!state.settings.webSearch;
  $('web-search').addEventListener('change', (e) => {
    state.settings.webSearch = e.target.checked;
    saveSettings();
  });
  $('image-mode').addEventListener('change', (e) => {
    document.body.classList.toggle('image-mode', e.target.checked);
    $('input').placeholder = e.target.checked ? 'Describe the image to generate' : 'Message (Enter sends, Shift+Enter: new line, Esc: stop)';
    if (e.target.checked && !modelInfo(state.settings.model, state.settings.provider).image) {
      const m = state.models.find((x) => x.image);
      if (m) selectModel(m.id, m.owned_by);
    }
  });

  $('new-chat').addEventListener('click', newConversation);
  $('conversations').addEventListener('click', (e) => {
    const b = e.target.closest('button');
    const li = e.target.closest('li');
    if (!b || !li) return;
    if (b.dataset.action === 'open') openConversation(li.dataset.id);
    if (b.dataset.action === 'rename') startRename(li);
    if (b.dataset.action === 'delete') deleteConversation(li, b);
  });
  $('export').addEventListener('click', exportConversations);
  $('import').addEventListener('change', (e) => {
    const f = e.target.files[0];
    if (f) importConversations(f);
    e.target.value = '';
  });
  $('open-sidebar').addEventListener('click', () => document.body.classList.add('sidebar-open'));
  $('close-sidebar').addEventListener('click', () => document.body.classList.remove('sidebar-open'));

  $('messages').addEventListener('click', (e) => {
    const media = e.target.closest('[data-media]');
    if (media) {
      e.preventDefault();
      openLightbox(media.dataset.media);
      return;
    }
    const img = e.target.closest('img.zoomable');
    if (img) {
      openLightbox(img.src);
      return;
    }
    const copy = e.target.closest('.copy-code');
    if (copy) {
      copyText(copy.dataset.copy, copy);
      return;
    }
    const b = e.target.closest('button[data-action]');
    const article = e.target.closest('article.msg');
    if (!b || !article) return;
    const m = state.conv.messages[Number(article.dataset.index)];
    if (b.dataset.action === 'copy') copyText(m.content, b);
    if (b.dataset.action === 'edit') startEdit(article);
    if (b.dataset.action === 'regenerate') regenerate();
  });
  $('lightbox').addEventListener('click', () => { $('lightbox').hidden = true; });

  $('open-settings').addEventListener('click', () => {
    $('settings-key').value = api.getKey();
    updateTemperature();
    $('settings').showModal();
  });
  $('settings').addEventListener('close', async () => {
    state.conv.system = $('system-prompt').value;
    const key = $('settings-key').value.trim();
    if (key !== api.getKey()) {
      api.setKey(key);
      await loadModels();
    }
    await persist();
  });
  $('temperature').addEventListener('input', (e) => {
    state.settings.temperature = Number(e.target.value);
    saveSettings();
    updateTemperature();
  });
  $('temperature-reset').addEventListener('click', () => {
    state.settings.temperature = null;
    saveSettings();
    updateTemperature();
  });
  $('key-form').addEventListener('submit', async () => {
    api.setKey($('key-input').value.trim());
    await loadModels();
  });
}

async function main() {
  loadSettings();
  bind();
  updateModelLabel();
  await refreshList();
  const current = localStorage.getItem(CURRENT);
  const saved = state.convs.find((c) => c.id === current);
  state.conv = saved || store.create();
  $('system-prompt').value = state.conv.system || '';
  renderMessages();
  await refreshList();
  await loadModels();
  document.body.dataset.ready = '1';
}

main();
