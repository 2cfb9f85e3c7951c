// dom.js -- builds the page's DOM from data without ever parsing data as
// HTML: every string becomes a text node or an attribute value set through
// the DOM, so a saga's name, error or output is shown, never run.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** Appends children: nodes as they are, anything else as text. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** h('a', {href: '/x'}, 'text', child...): an HTML element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/** A class-name-safe form of a word from the API (a state, a status). */
export function token(word) {
  return /^[a-z_]{1,32}$/.test(String(word)) ? String(word) : 'unknown';
}

/** Words for the states and step statuses, so that colour is never the only sign. */
const MARKS = {
  submitted: '…', running: '▶', confirming: '▶', compensating: '↺', completed: '✓',
  compensated: '↶', stuck: '⚠', pending: '○', waiting: '⏱', succeeded: '✓', failed: '✗',
  compensation_failed: '✗', malformed: '?', cancelled: '↶', confirmed: '✓', cancelling: '↺',
  confirm_failed: '✗', cancel_failed: '✗',
};

/** A state or status as a badge: a mark, the word, and a colour class. */
export function badge(word) {
  const w = String(word ?? 'unknown');
  return h('span', {class: `badge st-${token(w)}`},
           h('span', {'aria-hidden': 'true'}, MARKS[w] ?? '•'), ' ', w.replace(/_/g, ' '));
}

/** Pretty JSON in a <pre>. */
export function jsonBlock(value) {
  return h('pre', {class: 'json'}, JSON.stringify(value, null, 2) ?? 'null');
}

/** A time from the API (ISO 8601) as the browser's local date and time. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString(undefined, {hour12: false});
}

/** The time of day of an ISO 8601 time, to the millisecond (local time). */
export function clock(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return String(iso ?? '');
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A table inside a horizontally scrolling box (narrow screens). */
export function table(caption, head, rows) {
  /* each cell names its column, for the stacked layout of narrow screens */
  for (const tr of rows)
    [...tr.children].forEach((td, i) => td.setAttribute('data-label', head[i] ?? ''));
  return h('div', {class: 'scroll', tabindex: '0', role: 'region', 'aria-label': caption},
           h('table', {class: 'stack'},
             h('caption', {class: 'sr-only'}, caption),
             h('thead', null, h('tr', null, head.map((c) => h('th', {scope: 'col'}, c)))),
             h('tbody', null, rows)));
}

/** A link inside the console, to a path built from parts (each encoded). */
export function link(text, ...parts) {
  const path = '/' + parts.map((p) => encodeURIComponent(p)).join('/');
  return h('a', {href: path}, text);
}
