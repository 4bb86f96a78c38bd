// Model output → safe DOM: Markdown (marked), sanitised (DOMPurify), code highlighted.
//
// Model output is untrusted. Nothing it writes may run script or load a remote resource
// without a click: DOMPurify drops scripts, event handlers, javascript: URLs, styles, forms,
// SVG and MathML; images and audio are shown only from data:/blob: URLs (what the gateway
// returns for generated media); any other image becomes a link the user may click. Without
// DOMPurify (not loaded, or unsupported) nothing is parsed as HTML: the text is shown as is.

import { Marked } from './vendor/marked.esm.js';

const marked = new Marked({ gfm: true, breaks: false });

const LOCAL_MEDIA = /^(data:(image|audio)\/[a-z0-9.+-]+[;,]|blob:)/i;
const SAFE_HREF = /^(https?:|mailto:|#)/i;

// Chromium checks the CSP when its HTML parser *creates* an event-handler or style attribute,
// a <style> or a <base> element, even in an inert document (DOMParser, <template>): parsing a
// model's `<img onerror=…>` is reported as a violation although nothing runs. So no parser
// here ever sees one: before parsing, a noncharacter goes inside every `on…` and `style` where
// an attribute name could start (after whitespace, a quote, or a `/` other than an end tag's:
// the only places the HTML tokenizer starts one) and every `style` / `base` right after `<`
// or `</` (a tag name), which makes them unknown attributes and elements the sanitiser drops
// (a marked <style> with its content). Text and attribute values get the noncharacter removed
// after sanitising, by DOM edits (nothing is reparsed).
const MARK = '\uFDD0';
const MARKS = /\uFDD0/g;
const NAMES = /(?<=[\s"']|[^<]\/)(?:o(?=n)|s(?=tyle))|(?<=<\/?)(?:s(?=tyle)|b(?=ase))/gi;

/** `html` with every possible handler / style attribute and style / base tag name broken by `MARK`. */
function markNames(html) {
  return html.replace(NAMES, `$&${MARK}`);
}

/** Removes `MARK` from the text and attribute values under `root` (and marked names). */
function unmark(root) {
  const texts = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_COMMENT);
  for (let n = texts.nextNode(); n; n = texts.nextNode()) {
    if (n.data.includes(MARK)) n.data = n.data.replace(MARKS, '');
  }
  for (const e of root.querySelectorAll('*')) {
    if (e.localName.includes(MARK)) {
      e.remove();
      continue;
    }
    for (const a of [...e.attributes]) {
      if (a.name.includes(MARK)) e.removeAttribute(a.name);
      else if (a.value.includes(MARK)) a.value = a.value.replace(MARKS, '');
    }
  }
}

let hooked = false;

/** DOMPurify with the page's hook, or null when it is missing or cannot work here. */
function purify() {
  const p = window.DOMPurify;
  if (!p || !p.isSupported || typeof p.sanitize !== 'function') return null;
  if (!hooked) {
    if (typeof p.addHook !== 'function') return null;
    p.addHook('afterSanitizeAttributes', (node) => {
      const tag = node.nodeName;
      if (tag === 'A') {
        const href = node.getAttribute('href') || '';
        if (LOCAL_MEDIA.test(href)) {
          // generated media: opened in the page's viewer (browsers refuse data: navigation)
          node.removeAttribute('href');
          node.setAttribute('data-media', href);
        } else if (!SAFE_HREF.test(href)) {
          node.removeAttribute('href');
        } else {
          node.setAttribute('target', '_blank');
          node.setAttribute('rel', 'noopener noreferrer nofollow');
        }
      }
      if (tag === 'IMG' || tag === 'AUDIO' || tag === 'SOURCE') {
        const src = node.getAttribute('src') || '';
        if (src && !LOCAL_MEDIA.test(src)) {
          node.removeAttribute('src');
          node.setAttribute('data-remote', src);
        }
      }
      if (tag === 'AUDIO') node.setAttribute('controls', '');
    });
    hooked = true;
  }
  return p;
}

const PURIFY = {
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'video',
    'iframe', 'object', 'embed', 'svg', 'math', 'link', 'meta', 'base', 'picture', 'track'],
  FORBID_ATTR: ['style', 'srcset', 'poster', 'background', 'ping', 'action', 'formaction',
    'xlink:href', 'id', 'name'],
  ADD_TAGS: ['audio', 'source'],
  ADD_FORBID_CONTENTS: [`s${MARK}tyle`],
  ADD_ATTR: ['controls', 'target'],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|data:(?:image|audio)\/|blob:)/i,
};

/**
 * Renders `markdown` into `el` (replacing its content); as plain text when DOMPurify is not
 * available (fail closed).
 */
export function renderMarkdown(el, markdown) {
  const source = String(markdown || '').replace(MARKS, '');
  const p = purify();
  if (!p) {
    el.classList.add('plain');
    el.textContent = source;
    return;
  }
  const clean = p.sanitize(markNames(marked.parse(source)), PURIFY);
  const tpl = document.createElement('template');
  // a template's content is inert: nothing in it loads or runs
  tpl.innerHTML = clean;
  const frag = tpl.content;
  unmark(frag);
  for (const img of frag.querySelectorAll('img[data-remote]')) img.replaceWith(remoteLink(img));
  for (const a of frag.querySelectorAll('audio[data-remote]')) a.replaceWith(remoteLink(a));
  for (const img of frag.querySelectorAll('img')) img.classList.add('zoomable');
  for (const table of frag.querySelectorAll('table')) {
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';
    table.replaceWith(wrap);
    wrap.append(table);
  }
  for (const pre of frag.querySelectorAll('pre')) decorateCode(pre);
  el.replaceChildren(frag);
}

function remoteLink(node) {
  const url = node.getAttribute('data-remote');
  const a = document.createElement('a');
  a.className = 'remote-media';
  a.textContent = `${node.nodeName === 'IMG' ? 'Image:' : 'Audio:'} ${node.getAttribute('alt') || url}`;
  if (/^https?:/i.test(url)) {
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    a.title = `Open ${url} (not loaded automatically)`;
  }
  return a;
}

function decorateCode(pre) {
  const code = pre.querySelector('code');
  if (!code) return;
  const lang = (/language-([\w+#.-]+)/.exec(code.className) || [])[1] || '';
  const text = code.textContent;
  highlight(code, text, lang);
  const bar = document.createElement('div');
  bar.className = 'code-bar';
  const label = document.createElement('span');
  label.textContent = lang || 'text';
  const copy = document.createElement('button');
  copy.type = 'button';
  copy.className = 'btn small copy-code';
  copy.textContent = 'Copy';
  copy.dataset.copy = text;
  bar.append(label, copy);
  pre.prepend(bar);
}

const KEYWORDS = new Set(('as async await break case catch class const continue def del do elif else enum ' +
  'except export extends false fn for from func function go if impl import in interface let loop ' +
  'match mod mut new nil none null or and not pass pub raise return self static struct super switch ' +
  'this throw trait true try type typeof use var void where while with yield True False None')
  .split(' '));

const TOKEN = /(\/\/[^\n]*|#[^\n]*|\/\*[\s\S]*?\*\/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`|\b\d[\d_.]*(?:e[+-]?\d+)?\b|\b[A-Za-z_]\w*\b)/g;

/** A small, dependency-free highlighter: comments, strings, numbers, keywords. */
function highlight(code, text, lang) {
  if (text.length > 100_000) return;
  const hashComments = /^(py|python|sh|bash|shell|zsh|toml|yaml|yml|ruby|rb|r|perl|make|dockerfile|conf|ini)$/i.test(lang);
  const out = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const t = m[0];
    let cls = '';
    if (t.startsWith('//') || t.startsWith('/*')) cls = 'tok-comment';
    else if (t.startsWith('#')) cls = hashComments ? 'tok-comment' : '';
    else if (/^["'`]/.test(t)) cls = 'tok-string';
    else if (/^\d/.test(t)) cls = 'tok-number';
    else if (KEYWORDS.has(t)) cls = 'tok-keyword';
    if (!cls) continue;
    if (m.index > last) out.append(text.slice(last, m.index));
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = t;
    out.append(span);
    last = m.index + t.length;
  }
  out.append(text.slice(last));
  code.replaceChildren(out);
}
