// saga.js -- one saga: its state and reason, its step graph, its steps
// with their inputs and outputs (collapsed), the timeline of its
// transitions, and the Cancel and Retry actions.

import {ApiError, api, seg} from './api.js';
import {badge, clock, h, jsonBlock, link, table, when} from './dom.js';
import {graph} from './graph.js';

const REFRESH_MS = 2000;
const FINISHED = new Set(['completed', 'compensated']);

/* What the API accepts (docs/api.md; saga.lua's saga_cancel and saga_retry). */
function cancelAllowed(doc) {
  if (doc.state === 'running' || doc.state === 'confirming') return [true, ''];
  if (doc.state === 'stuck' && doc.stuck_in !== 'compensating') return [true, ''];
  if (doc.state === 'stuck') return [false, 'it is stuck while compensating: retry it instead'];
  return [false, `it is ${doc.state}`];
}

function retryAllowed(doc) {
  return doc.state === 'stuck' ? [true, ''] : [false, `it is ${doc.state}, not stuck`];
}

function details(key, summary, value) {
  return h('details', {'data-key': key}, h('summary', null, summary), jsonBlock(value));
}

function stepRows(doc) {
  return doc.steps.map((st) => {
    const io = [];
    if (st.action?.input !== undefined && st.action.input !== null)
      io.push(details(`in:${st.name}`, 'Input', st.action.input));
    if (st.output !== null && st.output !== undefined)
      io.push(details(`out:${st.name}`, 'Output', st.output));
    if (st.compensation?.input !== undefined && st.compensation.input !== null)
      io.push(details(`cin:${st.name}`, 'Compensation input', st.compensation.input));
    const comp = st.compensation
      ? [badge(st.compensation.status), ` ${st.compensation.attempts} attempt(s)`] : '';
    return h('tr', {'data-step': st.name},
      h('td', null, st.name),
      h('td', null, badge(st.status)),
      h('td', null, String(st.attempts ?? 0),
        st.action?.retry_at ? h('div', {class: 'meta'}, `next try ${when(st.action.retry_at)}`)
                            : null),
      h('td', null, comp),
      h('td', {class: 'error-cell'}, st.error ? h('span', {class: 'error'}, st.error) : ''),
      h('td', null, io.length ? io : h('span', {class: 'meta'}, 'none yet')));
  });
}

function eventClass(type, phase) {
  if (/fail|error|stuck|given_up/.test(type)) return 'ev-bad';
  if (/compensat|cancel/.test(type) || phase === 'compensation') return 'ev-comp';
  if (/succeed|complete|ok/.test(type)) return 'ev-good';
  return '';
}

/* For a retry: when its next attempt started (the delay it waited), or
 * when it is due. */
function retryNote(transitions, k, doc) {
  const t = transitions[k];
  if (t.type !== 'step.retrying') return null;
  const next = transitions.slice(k + 1).find((u) => u.type === 'step.started' &&
                                              u.step === t.step && u.phase === t.phase);
  if (next) {
    const ms = Date.parse(next.ts) - Date.parse(t.ts);
    return h('div', {class: 'meta'}, `retried after ${ms} ms (attempt ${next.attempt})`);
  }
  const st = (doc.steps ?? []).find((x) => x.name === t.step);
  const ph = t.phase === 'compensation' ? st?.compensation : st?.action;
  return ph?.retry_at ? h('div', {class: 'meta'}, `next attempt at ${clock(ph.retry_at)}`) : null;
}

function timeline(transitions, doc) {
  if (!transitions.length) return h('p', {class: 'empty'}, 'No transition recorded yet.');
  const rows = transitions.map((t, k) => h('tr', {class: eventClass(t.type, t.phase), 'data-seq': t.seq,
                                                  'data-type': t.type},
    h('td', null, String(t.seq)),
    h('td', null, h('time', {datetime: t.ts, title: when(t.ts)}, clock(t.ts))),
    h('td', null, h('code', null, t.type)),
    h('td', null, t.step ?? ''),
    h('td', null, t.phase ?? ''),
    h('td', null, t.attempt != null ? String(t.attempt) : ''),
    h('td', {class: 'detail'}, t.detail ?? '', retryNote(transitions, k, doc)),
    h('td', null, t.worker ?? '')));
  return table('Timeline', ['#', 'Time', 'Event', 'Step', 'Phase', 'Attempt', 'Detail', 'Worker'],
               rows);
}

export async function sagaPage(ctx) {
  const id = ctx.params[0];
  ctx.title(`Saga ${id}`);
  let message = null; /* the outcome of the last action, kept across refreshes */

  const act = async (kind, doc) => {
    const yes = kind === 'cancel' ? 'Cancel the saga' : 'Retry the saga';
    const text = kind === 'cancel'
      ? `Cancel saga ${id}? No new step starts; the steps that started are compensated, ` +
        'newest first.'
      : `Retry saga ${id}? Its failed ${doc.stuck_in === 'compensating' ? 'compensations'
                                                                         : 'steps'} ` +
        'are tried again with a fresh attempt budget.';
    if (!await ctx.confirm(kind === 'cancel' ? 'Cancel this saga?' : 'Retry this saga?', text, yes,
                           'Keep it as it is')) return;
    try {
      const r = await api(`/v1/sagas/${seg(id)}/${kind}`, 'POST');
      message = {ok: true, text: `${kind === 'cancel' ? 'Cancel' : 'Retry'} requested: the saga is ` +
                                 `${r.state} now.`};
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      message = {ok: false, text: `${kind === 'cancel' ? 'Cancel' : 'Retry'} failed: ` +
                                  ctx.describe(err)};
    }
    await load();
  };

  let finished = false;
  const load = async () => {
    let doc, hist = {transitions: []};
    try {
      doc = await api('/v1/sagas/' + seg(id));
    } catch (err) {
      if (err.status !== 404 && err.status !== 400) throw err;
      ctx.render([h('h1', null, 'Saga not found'),
                  h('p', {class: 'error', role: 'alert'}, ctx.describe(err)),
                  h('p', null, h('a', {href: '/sagas'}, 'All sagas'))]);
      return;
    }
    try {
      hist = await api(`/v1/sagas/${seg(id)}/history`);
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    finished = FINISHED.has(doc.state);
    const [canCancel, whyNotCancel] = cancelAllowed(doc);
    const [canRetry, whyNotRetry] = retryAllowed(doc);
    const steps = doc.steps ?? [];
    const cancel = h('button', {type: 'button', class: 'danger', 'data-key': 'cancel',
                                disabled: !canCancel,
                                title: canCancel ? 'Cancel this saga' : `Cannot cancel: ${whyNotCancel}`},
                     'Cancel…');
    const retry = h('button', {type: 'button', 'data-key': 'retry', disabled: !canRetry,
                               title: canRetry ? 'Retry this stuck saga' : `Cannot retry: ${whyNotRetry}`},
                    'Retry…');
    cancel.addEventListener('click', () => act('cancel', doc).catch(fail));
    retry.addEventListener('click', () => act('retry', doc).catch(fail));
    ctx.render([
      h('h1', null, 'Saga ', h('span', {class: 'ident'}, doc.id)),
      h('dl', {class: 'facts'},
        h('dt', null, 'State'), h('dd', {id: 'saga-state'}, badge(doc.state)),
        h('dt', null, 'Reason'), h('dd', {id: 'saga-reason', class: 'reason'}, doc.reason ?? '—'),
        doc.stuck_in ? [h('dt', null, 'Stuck in'), h('dd', null, doc.stuck_in)] : null,
        h('dt', null, 'Saga'), h('dd', null, doc.saga ? link(doc.saga, 'definitions', doc.saga) : '—'),
        h('dt', null, 'Created'), h('dd', null, when(doc.created) || '—'),
        h('dt', null, 'Updated'), h('dd', null, when(doc.updated) || '—'),
        h('dt', null, 'Worker'), h('dd', null, doc.owner ?? '—'),
        doc.definition ? [h('dt', null, 'Definition'),
                          h('dd', null, h('code', null, doc.definition.slice(0, 16)))] : null),
      h('div', {class: 'actions', role: 'group', 'aria-label': 'Actions'}, cancel, retry,
        h('span', {class: 'meta'},
          !canCancel && !canRetry ? 'Nothing to do: the saga is ' + doc.state + '.' : '')),
      message ? h('p', {id: 'action-result', role: 'status',
                        class: message.ok ? 'ok' : 'error'}, message.text) : null,
      doc.input !== undefined ? details('input', 'Saga input', doc.input) : null,
      steps.length ? [h('h2', null, 'Steps'),
                      h('div', {class: 'graph-box'},
                        graph(steps.map((st) => ({name: st.name, after: st.after ?? [],
                                                  status: st.status})), `Steps of saga ${doc.id}`)),
                      table('Steps', ['Step', 'Status', 'Attempts', 'Compensation', 'Error',
                                      'Input / output'], stepRows(doc))]
                   : h('p', {class: 'meta'}, 'Waiting for a worker to start it.'),
      h('h2', null, 'Timeline'),
      h('p', {class: 'meta'}, FINISHED.has(doc.state)
        ? 'Every transition, oldest first, with the worker that wrote it.'
        : `Every transition, oldest first, with the worker that wrote it; refreshes every ${REFRESH_MS / 1000} s.`),
      timeline(hist.transitions ?? [], doc),
    ]);
  };

  const fail = (err) => {
    if (ctx.alive()) ctx.banner(ctx.describe(err));
  };

  await load();
  /* a finished saga changes no more */
  ctx.every(REFRESH_MS, async () => { if (!finished) await load(); });
}
