// Conversations kept in this browser (IndexedDB), with export/import as JSON.

const DB = 'llmux';
const STORE = 'conversations';

let opened = null;

function db() {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}

async function tx(mode, run) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction(STORE, mode);
    const req = run(t.objectStore(STORE));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

/** Every conversation, most recently updated first. */
export async function all() {
  const list = (await tx('readonly', (s) => s.getAll())) || [];
  return list.sort((a, b) => b.updated - a.updated);
}

export function save(conv) {
  conv.updated = Date.now();
  return tx('readwrite', (s) => s.put(structuredClone(conv)));
}

export function remove(id) {
  return tx('readwrite', (s) => s.delete(id));
}

export function create() {
  const now = Date.now();
  return {
    id: crypto.randomUUID(),
    title: 'New chat',
    created: now,
    updated: now,
    system: '',
    state: null,
    messages: [],
  };
}

/** The export file: `{"llmux": 1, "conversations": [...]}`. */
export async function exportAll() {
  return JSON.stringify({ llmux: 1, exported: new Date().toISOString(), conversations: await all() }, null, 1);
}

/** Imports an export file (or a bare array); returns how many conversations were added. */
export async function importText(text) {
  const parsed = JSON.parse(text);
  const list = Array.isArray(parsed) ? parsed : parsed?.conversations;
  if (!Array.isArray(list)) throw new Error('not an llmux export: no "conversations" list');
  let n = 0;
  for (const c of list) {
    if (!c || typeof c !== 'object' || !Array.isArray(c.messages)) continue;
    const conv = { ...create(), ...c };
    conv.id = typeof c.id === 'string' && c.id ? c.id : crypto.randomUUID();
    // an imported file is untrusted too: media only as data: URLs, so nothing loads remotely
    const local = (u) => typeof u === 'string' && /^data:(image|audio)\//.test(u);
    conv.messages = c.messages
      .filter((m) => m && (m.role === 'user' || m.role === 'assistant'))
      .map((m) => ({
        ...m,
        content: String(m.content ?? ''),
        pending: false,
        attachments: Array.isArray(m.attachments) ? m.attachments.filter((a) => a && local(a.url)) : [],
        images: Array.isArray(m.images) ? m.images.filter(local) : undefined,
      }));
    conv.title = String(conv.title || 'Imported chat');
    await tx('readwrite', (s) => s.put(conv));
    n++;
  }
  return n;
}
