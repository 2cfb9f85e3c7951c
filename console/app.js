// app.js -- the console's entry: routes the path to a view, keeps views
// refreshing by themselves, asks for a token when the API wants one.
// Everything shown comes from the /v1 API (api.js).

import {ApiError, getToken, setToken} from './api.js';
import {h} from './dom.js';
import {definitionList, definitionPage, overview, sagaList} from './views.js';
import {sagaPage} from './saga.js';

const routes = [
  [/^\/$/, overview, 'overview'],
  [/^\/sagas$/, sagaList, 'sagas'],
  [/^\/sagas\/([^/]+)$/, sagaPage, 'sagas'],
  [/^\/definitions$/, definitionList, 'definitions'],
  [/^\/definitions\/([^/]+)$/, definitionPage, 'definitions'],
];

const main = document.getElementById('main');
const banner = document.getElementById('banner');
const forget = document.getElementById('forget-token');
let generation = 0;
let timers = [];
let openDetails = new Set(); /* which <details> the user opened, kept across refreshes */

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

function stopTimers() {
  timers.forEach((t) => clearTimeout(t));
  timers = [];
}

/** The message for an API error, 401 and 403 spelled out. */
export function describe(err) {
  if (!(err instanceof ApiError)) return `Error: ${err.message ?? err}`;
  if (err.status === 401) return `Not authorized (401): ${err.message}`;
  if (err.status === 403) return `Forbidden (403): ${err.message}`;
  if (err.status === 0) return err.message;
  return `${err.status} ${err.code}: ${err.message}`;
}

function tokenPrompt(err) {
  stopTimers();
  const had = getToken();
  const input = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'off',
                            required: true, spellcheck: 'false', size: 40});
  const form = h('form', {class: 'token-form', 'aria-labelledby': 'token-title'},
    h('h1', {id: 'token-title'}, 'A token is needed'),
    h('p', {class: 'error', id: 'token-message', role: 'alert'},
      had ? `The server refused this token. ${describe(err)}`
          : `This server asks for a bearer token. ${describe(err)}`),
    h('p', null, 'Enter a token from the token file of saga serve. It is kept in this tab only ' +
                 '(sessionStorage) and sent with each API request.'),
    h('label', {for: 'token'}, 'Token'), ' ', input, ' ',
    h('button', {type: 'submit'}, 'Use token'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    route();
  });
  main.replaceChildren(form);
  input.focus();
}

/** Replaces the main content, keeping open <details> and the focused control. */
function render(gen, nodes) {
  if (gen !== generation) return;
  const focused = document.activeElement?.dataset?.key;
  main.replaceChildren(...[nodes].flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  for (const d of main.querySelectorAll('details[data-key]')) {
    if (openDetails.has(d.dataset.key)) d.open = true;
    d.addEventListener('toggle', () => {
      if (d.open) openDetails.add(d.dataset.key);
      else openDetails.delete(d.dataset.key);
    });
  }
  if (focused) main.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

/** A modal confirmation; resolves true when the user confirms. */
function confirmDialog(title, text, yes, no) {
  return new Promise((resolve) => {
    const dlg = h('dialog', {class: 'confirm', 'aria-labelledby': 'dlg-title'},
      h('h2', {id: 'dlg-title'}, title), h('p', null, text),
      h('div', {class: 'buttons'},
        h('button', {type: 'button', class: 'danger', 'data-answer': 'yes'}, yes),
        h('button', {type: 'button', 'data-answer': 'no'}, no)));
    let answer = false;
    dlg.addEventListener('click', (e) => {
      const b = e.target.closest('button');
      if (!b) return;
      answer = b.dataset.answer === 'yes';
      dlg.close();
    });
    dlg.addEventListener('close', () => { dlg.remove(); resolve(answer); });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector('[data-answer="no"]').focus();
  });
}

export function navigate(path) {
  history.pushState(null, '', path);
  route(true);
}

async function route(moved = false) {
  stopTimers();
  const gen = ++generation;
  if (moved) openDetails = new Set();
  showBanner('');
  forget.hidden = !getToken();
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const found = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll('nav a')) {
    if (found && a.dataset.nav === found[2]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!found) {
    render(gen, [h('h1', null, 'Not found'), h('p', null, 'The console has no page here. '),
                 h('p', null, h('a', {href: '/'}, 'Go to the overview'))]);
    return;
  }
  const [re, view] = found;
  const params = re.exec(path).slice(1).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const ctx = {
    params,
    query: new URLSearchParams(location.search),
    alive: () => gen === generation,
    render: (nodes) => render(gen, nodes),
    title: (t) => { if (gen === generation) document.title = `${t} · saga console`; },
    /* runs fn every `ms` until the user leaves the page; errors go to the banner */
    every: (ms, fn) => {
      const tick = async () => {
        if (gen !== generation) return;
        try {
          await fn();
          if (gen === generation) showBanner('');
        } catch (err) {
          if (gen !== generation) return;
          if (err instanceof ApiError && err.status === 401) return tokenPrompt(err);
          showBanner(`Refresh failed: ${describe(err)}`);
        }
        if (gen === generation) timers.push(setTimeout(tick, ms));
      };
      timers.push(setTimeout(tick, ms));
    },
    confirm: confirmDialog,
    navigate,
    banner: showBanner,
    describe,
  };
  try {
    await view(ctx);
    if (moved && gen === generation) main.focus({preventScroll: true});
  } catch (err) {
    if (gen !== generation) return;
    if (err instanceof ApiError && err.status === 401) return tokenPrompt(err);
    render(gen, [h('h1', null, 'Something went wrong'),
                 h('p', {class: 'error', role: 'alert'}, describe(err))]);
  }
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey ||
      e.altKey || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', () => route(true));
forget.addEventListener('click', () => { setToken(null); route(); });
route();
