// The page's client of the gateway's public API (/v1/*), with the gateway key from this browser.

const KEY = 'llmux.apiKey';

export function getKey() {
  return localStorage.getItem(KEY) || '';
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** An error answer of the gateway: HTTP status, OpenAI error fields and Retry-After. */
export class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code || '';
    this.type = error?.type || '';
    this.param = error?.param || '';
    this.retryAfter = retryAfter;
  }

  /** True when the gateway wants (another) key. */
  get needsKey() {
    return this.code === 'missing_api_key' || this.code === 'invalid_api_key';
  }
}

function headers(json) {
  const h = {};
  if (json) h['content-type'] = 'application/json';
  const key = getKey();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function retryAfter(resp) {
  const v = resp.headers.get('retry-after');
  if (!v) return null;
  const secs = Number(v);
  if (Number.isFinite(secs)) return secs;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

async function failure(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: the status says enough
  }
  return new ApiError(resp.status, body?.error, retryAfter(resp));
}

async function request(path, { method = 'GET', body, signal } = {}) {
  const resp = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!resp.ok) throw await failure(resp);
  return resp;
}

export async function models() {
  return (await (await request('/v1/models')).json()).data || [];
}

export async function providers() {
  return (await (await request('/v1/providers')).json()).data || [];
}

export async function generateImage(body, signal) {
  return (await request('/v1/images/generations', { method: 'POST', body, signal })).json();
}

/**
 * Streams a chat completion. `on` gets `{content, reasoning}` deltas and `{provider, model}`.
 * Resolves with `{conversation, provider, model, finishReason}`; rejects with an ApiError (also
 * for an error event after output began) or an AbortError.
 */
export async function streamChat(body, { signal, on }) {
  const resp = await request('/v1/chat/completions', {
    method: 'POST',
    body: { ...body, stream: true },
    signal,
  });
  const result = { conversation: null, provider: '', model: '', finishReason: '' };
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let end;
    while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data || data === '[DONE]') continue;
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue;
      }
      if (chunk.error) throw new ApiError(200, chunk.error, null);
      if (chunk.provider && chunk.provider !== result.provider) {
        result.provider = chunk.provider;
        result.model = chunk.model || result.model;
        on({ provider: result.provider, model: result.model });
      }
      if (chunk.conversation !== undefined) result.conversation = chunk.conversation;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const delta = choice.delta || {};
      if (delta.reasoning_content) on({ reasoning: delta.reasoning_content });
      if (delta.content) on({ content: delta.content });
      if (choice.finish_reason) result.finishReason = choice.finish_reason;
    }
  }
  return result;
}
