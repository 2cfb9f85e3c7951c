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
  if (doc.state === 'confirming' || (doc.state === 'stuck' && doc.stuck_in === 'confirming'))
    return [false, 'every Try succeeded and the decision to confirm is written'];
  if (doc.pivoted) return [false, `its pivot step ${doc.pivot} succeeded: it only goes forward`];
  if (doc.state === 'running') return [true, ''];
  if (doc.state === 'stuck' && doc.stuck_in !== 'compensating') return [true, ''];
  if (doc.state === 'stuck') return [false, 'it is stuck while compensating: retry it instead'];
  return [false, `it is ${doc.state}`];
}

/* A step's phases by role: what it does (a saga's action, a TCC Try), what
 * undoes it (compensation, Cancel) and a TCC step's Confirm. */
function phases(st) {
  return {does: st.action ?? st.try, undo: st.compensation ?? st.cancel, confirm: st.confirm};
}

function phaseCell(label, ph) {
  return ph ? h('div', null, label, badge(ph.status), ` ${ph.attempts} attempt(s)`) : null;
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
    const {does, undo, confirm} = phases(st);
    const tcc = st.try !== undefined;
    if (does?.input !== undefined && does.input !== null)
      io.push(details(`in:${st.name}`, tcc ? 'Try input' : 'Input', does.input));
    if (st.output !== null && st.output !== undefined)
      io.push(details(`out:${st.name}`, 'Output', st.output));
    if (confirm?.input !== undefined && confirm.input !== null)
      io.push(details(`fin:${st.name}`, 'Confirm input', confirm.input));
    if (undo?.input !== undefined && undo.input !== null)
      io.push(details(`cin:${st.name}`, tcc ? 'Cancel input' : 'Compensation input', undo.input));
    const comp = tcc ? [phaseCell('confirm ', confirm), phaseCell('cancel ', undo)]
                     : (undo ? [badge(undo.status), ` ${undo.attempts} attempt(s)`] : '');
    return h('tr', {'data-step': st.name},
      h('td', null, st.name),
      h('td', null, badge(st.status)),
      h('td', null, String(st.attempts ?? 0),
        does?.retry_at ? h('div', {class: 'meta'}, `next try ${when(does.retry_at)}`)
                            : null),
      h('td', null, comp),
      h('td', {class: 'error-cell'}, st.error ? h('span', {class: 'error'}, st.error) : ''),
      h('td', null, io.length ? io : h('span', {class: 'meta'}, 'none yet')));
  });
}

function eventClass(type, phase) {
  if (/fail|error|stuck|given_up/.test(type)) return 'ev-bad';
  if (/compensat|cancel/.test(type) || phase === 'compensation' || phase === 'cancel')
    return 'ev-comp';
  if (/succeed|complete|ok/.test(type)) return 'ev-good';
  return '';
}

/* The delay a step.retrying entry recorded: the end of its detail reads
 * "; retry in 250 ms (attempt 2 of 5)" (docs/redis-layout.md). null for an
 * entry written before the delay was recorded. */
function recordedDelay(detail) {
  const m = /; retry in (\d+) ms \(attempt \d+ of \d+\)$/.exec(detail ?? '');
  return m ? Number(m[1]) : null;
}

/* For a retry: the delay it waited before its next attempt (as recorded,
 * else from the two entries' times), or when that attempt is due. */
function retryNote(transitions, k, doc) {
  const t = transitions[k];
  if (t.type !== 'step.retrying') return null;
  const next = transitions.slice(k + 1).find((u) => u.type === 'step.started' &&
                                              u.step === t.step && u.phase === t.phase);
  if (next) {
    const ms = recordedDelay(t.detail) ?? Date.parse(next.ts) - Date.parse(t.ts);
    return h('div', {class: 'meta'}, `retried after ${ms} ms (attempt ${next.attempt})`);
  }
  const st = (doc.steps ?? []).find((x) => x.name === t.step);
  const ph = st ? (t.phase === 'compensation' || t.phase === 'cancel' ? phases(st).undo
                   : t.phase === 'confirm' ? st.confirm : phases(st).does) : null;
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
      : `Retry saga ${id}? Its failed ${doc.stuck_in === 'compensating'
        ? (doc.mode === 'tcc' ? 'Cancels' : 'compensations')
        : doc.stuck_in === 'confirming' ? 'Confirms' : 'steps'} ` +
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
                      table('Steps', ['Step', 'Status', 'Attempts',
                                      doc.mode === 'tcc' ? 'Confirm / Cancel' : 'Compensation', 'Error',
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
