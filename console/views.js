// views.js -- the overview, the list of sagas, the definitions.

import {api, seg} from './api.js';
import {badge, h, link, table, when} from './dom.js';
import {graph} from './graph.js';

const REFRESH_MS = 3000;
const STATES = ['running', 'compensating', 'stuck', 'completed', 'compensated'];

function sagaRows(sagas) {
  return sagas.map((sg) => h('tr', {'data-id': sg.id},
    h('td', {class: 'nowrap'}, link(sg.id, 'sagas', sg.id)),
    h('td', null, sg.saga ? link(sg.saga, 'definitions', sg.saga) : ''),
    h('td', null, badge(sg.state)),
    h('td', {class: 'nowrap'}, when(sg.created)),
    h('td', {class: 'reason'}, sg.reason ?? ''),
    h('td', null, sg.owner ?? '')));
}

function sagaTable(caption, sagas) {
  if (sagas.length === 0) return h('p', {class: 'empty'}, 'No sagas.');
  return table(caption, ['Id', 'Saga', 'State', 'Created', 'Reason', 'Worker'], sagaRows(sagas));
}

/* ---- / ---- */

function card(label, value, {href, cls, note} = {}) {
  const body = [h('span', {class: 'value'}, String(value)), h('span', {class: 'label'}, label),
                note ? h('span', {class: 'note'}, note) : null];
  return h('li', {class: `card ${cls ?? ''}`, 'data-card': label},
           href ? h('a', {href}, body) : body);
}

export async function overview(ctx) {
  ctx.title('Overview');
  const load = async () => {
    const [stats, list] = await Promise.all([api('/v1/stats'), api('/v1/sagas?limit=15')]);
    const sg = stats.sagas;
    const time = new Date().toLocaleTimeString(undefined, {hour12: false});
    ctx.render([
      h('h1', null, 'Overview'),
      h('p', {class: 'meta'}, `Updated ${time}; refreshes every ${REFRESH_MS / 1000} s.`),
      h('h2', {id: 'counts-title'}, 'Sagas by state'),
      h('ul', {class: 'cards', 'aria-labelledby': 'counts-title'},
        card('stuck', sg.stuck, {href: '/sagas?state=stuck',
                                 cls: sg.stuck > 0 ? 'alert st-stuck' : 'st-stuck',
                                 note: sg.stuck > 0 ? 'needs an operator' : 'none'}),
        card('running', sg.running, {href: '/sagas?state=running', cls: 'st-running'}),
        card('compensating', sg.compensating,
             {href: '/sagas?state=compensating', cls: 'st-compensating'}),
        card('unfinished', sg.unfinished, {note: 'running, compensating or stuck'}),
        card('finished', sg.finished, {note: 'completed or compensated, retained'})),
      sg.partial ? h('p', {class: 'meta'},
                     'More than 10,000 sagas are unfinished: the states count the newest.') : null,
      h('h2', {id: 'cluster-title'}, 'Workers and intake'),
      h('ul', {class: 'cards', 'aria-labelledby': 'cluster-title'},
        card('live workers', stats.workers_live,
             {cls: stats.workers_live === 0 ? 'alert' : '', note: stats.workers_live === 0
               ? 'no worker runs: nothing progresses' : 'leases running'}),
        card('intake backlog', stats.intake_backlog, {note: 'start requests not yet taken'})),
      h('h2', null, 'Newest sagas'),
      h('p', {class: 'meta'}, 'Unfinished first, newest first; then the last finished. ',
        h('a', {href: '/sagas'}, 'All sagas')),
      sagaTable('Newest sagas', list.sagas),
    ]);
  };
  await load();
  ctx.every(REFRESH_MS, load);
}

/* ---- /sagas ---- */

export async function sagaList(ctx) {
  ctx.title('Sagas');
  const q = ctx.query;
  const state = q.get('state') ?? '';
  const name = q.get('saga') ?? '';
  const cursor = q.get('cursor') ?? '';
  const limit = /^[1-9][0-9]{0,2}$/.test(q.get('limit') ?? '') ? q.get('limit') : '50';
  const params = new URLSearchParams({limit});
  if (state) params.set('state', state);
  if (name) params.set('saga', name);
  if (cursor) params.set('cursor', cursor);

  const filterQuery = (extra = {}) => {
    const p = new URLSearchParams();
    if (state) p.set('state', state);
    if (name) p.set('saga', name);
    if (limit !== '50') p.set('limit', limit);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    const t = p.toString();
    return '/sagas' + (t ? '?' + t : '');
  };

  const stateSel = h('select', {id: 'f-state', name: 'state'},
    h('option', {value: ''}, 'any state'),
    STATES.map((st) => h('option', {value: st, selected: st === state}, st)));
  const nameIn = h('input', {id: 'f-saga', name: 'saga', value: name, size: 18,
                             placeholder: 'trip_booking', autocomplete: 'off'});
  const filters = h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter sagas'},
    h('label', {for: 'f-state'}, 'State'), stateSel,
    h('label', {for: 'f-saga'}, 'Saga name'), nameIn,
    h('button', {type: 'submit'}, 'Filter'));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (stateSel.value) p.set('state', stateSel.value);
    if (nameIn.value.trim()) p.set('saga', nameIn.value.trim());
    const t = p.toString();
    ctx.navigate('/sagas' + (t ? '?' + t : ''));
  });
  const idIn = h('input', {id: 'f-id', name: 'id', size: 28, autocomplete: 'off',
                           placeholder: 'order-1042', required: true});
  const search = h('form', {class: 'filters', role: 'search', 'aria-label': 'Find a saga by id'},
    h('label', {for: 'f-id'}, 'Saga id'), idIn, h('button', {type: 'submit'}, 'Open'));
  search.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = idIn.value.trim();
    if (id) ctx.navigate('/sagas/' + seg(id));
  });

  const page = await api('/v1/sagas?' + params.toString());
  const nav = h('nav', {class: 'pager', 'aria-label': 'Pages'},
    cursor ? h('a', {href: filterQuery()}, '⏮ First page') : null,
    page.next ? h('a', {href: filterQuery({cursor: page.next}), rel: 'next'}, 'Next page ▶')
              : h('span', {class: 'meta'}, 'Last page'));
  ctx.render([
    h('h1', null, 'Sagas'),
    filters, search,
    h('p', {class: 'meta'},
      `${page.sagas.length} saga(s) on this page` +
      (state ? `, state ${state}` : '') + (name ? `, saga ${name}` : '') +
      `. A page may hold fewer than ${limit} and still have a next one.`),
    page.sagas.length ? sagaTable('Sagas', page.sagas) : h('p', {class: 'empty'}, 'No sagas match.'),
    nav,
  ]);
}

/* ---- /definitions ---- */

export async function definitionList(ctx) {
  ctx.title('Definitions');
  const {definitions} = await api('/v1/definitions');
  const rows = definitions.map((d) => h('tr', null,
    h('td', null, link(d.name, 'definitions', d.name)),
    h('td', null, d.version ?? ''),
    h('td', null, d.recovery ?? ''),
    h('td', null, String(d.steps?.length ?? '')),
    h('td', null, d.workers.length ? `${d.workers.length}: ${d.workers.join(', ')}`
                                   : h('span', {class: 'badge st-stuck'}, '⚠ none live')),
    h('td', null, d.description ?? '')));
  ctx.render([
    h('h1', null, 'Definitions'),
    h('p', {class: 'meta'}, 'The sagas that workers publish, with the live workers serving each.'),
    definitions.length
      ? table('Definitions', ['Name', 'Version', 'Recovery', 'Steps', 'Live workers',
                              'Description'], rows)
      : h('p', {class: 'empty'}, 'No worker has published a definition yet.'),
  ]);
}

export async function definitionPage(ctx) {
  const name = ctx.params[0];
  ctx.title(name);
  let d;
  try {
    d = await api('/v1/definitions/' + seg(name));
  } catch (err) {
    if (err.status !== 404) throw err;
    ctx.render([h('h1', null, 'Definition not found'),
                h('p', {class: 'error', role: 'alert'}, ctx.describe(err)),
                h('p', null, h('a', {href: '/definitions'}, 'All definitions'))]);
    return;
  }
  const steps = d.steps ?? []; /* absent when the stored definition cannot be read */
  const rows = steps.map((st) => h('tr', null,
    h('td', null, st.name), h('td', null, (st.after ?? []).join(', ')),
    h('td', null, h('code', null, st.action ?? st.try),
      st.confirm ? [h('br'), 'confirm: ', h('code', null, st.confirm)] : null),
    h('td', null, (st.compensation ?? st.cancel) ? h('code', null, st.compensation ?? st.cancel)
                                                 : 'none')));
  ctx.render([
    h('h1', null, 'Definition ', h('span', {class: 'ident'}, d.name)),
    d.description ? h('p', null, d.description) : null,
    h('dl', {class: 'facts'},
      h('dt', null, 'Hash'), h('dd', null, h('code', null, d.hash)),
      h('dt', null, 'Version'), h('dd', null, String(d.version ?? '')),
      h('dt', null, 'Recovery'), h('dd', null, d.recovery ?? ''),
      h('dt', null, 'Required inputs'), h('dd', null, (d.required_inputs ?? []).join(', ') || 'none'),
      h('dt', null, 'Live workers'), h('dd', null, d.workers.join(', ') || 'none')),
    h('p', null, h('a', {href: '/sagas?saga=' + seg(d.name)}, 'Sagas of this definition')),
    h('h2', null, 'Graph'),
    h('div', {class: 'graph-box'}, graph(steps, `Steps of ${d.name}`)),
    h('h2', null, 'Steps'),
    table('Steps', d.mode === 'tcc' ? ['Step', 'After', 'Try / Confirm', 'Cancel']
                                 : ['Step', 'After', 'Action', 'Compensation'], rows),
    h('h2', null, 'YAML'),
    h('pre', {class: 'yaml'}, d.yaml ?? ''),
  ]);
}
