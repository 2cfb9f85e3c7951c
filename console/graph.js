// graph.js -- a saga's step graph as SVG, drawn from its definition's
// `after` edges: steps that can run together (the same depth) side by
// side, each below the steps it runs after; a step's status is written
// under its name as well as shown by its colour.

import {s, token} from './dom.js';

const W = 168, H = 54, GX = 22, GY = 46, PAD = 12;
let graphs = 0;

/** Depth of each step: 0 without `after`, else one more than its deepest predecessor. */
function depths(steps) {
  const byName = new Map(steps.map((st, i) => [st.name, i]));
  const depth = new Array(steps.length).fill(-1);
  const visiting = new Set();
  const visit = (i) => {
    if (depth[i] >= 0) return depth[i];
    if (visiting.has(i)) return 0; /* a cycle (never in a valid definition) */
    visiting.add(i);
    let d = 0;
    for (const a of steps[i].after ?? []) {
      const j = byName.get(a);
      if (j !== undefined) d = Math.max(d, visit(j) + 1);
    }
    visiting.delete(i);
    depth[i] = d;
    return d;
  };
  steps.forEach((_, i) => visit(i));
  return depth;
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

/**
 * graph(steps): steps = [{name, after: [names], status?}] in definition
 * order. Returns an <svg> element (role img, with a text description).
 */
export function graph(steps, label) {
  const id = `arrow-${++graphs}`;
  const depth = depths(steps);
  const rows = [];
  steps.forEach((st, i) => (rows[depth[i]] ??= []).push(i));
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = PAD * 2 + widest * W + (widest - 1) * GX;
  const height = PAD * 2 + rows.length * H + Math.max(0, rows.length - 1) * GY;
  const pos = new Array(steps.length);
  rows.forEach((r, d) => {
    const rw = r.length * W + (r.length - 1) * GX;
    const x0 = (width - rw) / 2;
    r.forEach((i, k) => { pos[i] = {x: x0 + k * (W + GX), y: PAD + d * (H + GY)}; });
  });
  const byName = new Map(steps.map((st, i) => [st.name, i]));
  const edges = [];
  steps.forEach((st, i) => {
    for (const a of st.after ?? []) {
      const j = byName.get(a);
      if (j === undefined) continue;
      const x1 = pos[j].x + W / 2, y1 = pos[j].y + H, x2 = pos[i].x + W / 2, y2 = pos[i].y - 2;
      const my = (y1 + y2) / 2;
      edges.push(s('path', {class: 'edge', d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`,
                            'marker-end': `url(#${id})`}));
    }
  });
  const nodes = steps.map((st, i) => {
    const status = st.status ?? null;
    const {x, y} = pos[i];
    return s('g', {class: `node st-${status ? token(status) : 'none'}`, 'data-step': st.name},
             s('title', null, status ? `${st.name}: ${status}` : st.name),
             s('rect', {x, y, width: W, height: H, rx: 7}),
             s('text', {x: x + W / 2, y: y + (status ? 22 : 32), class: 'name'}, clip(st.name, 22)),
             status ? s('text', {x: x + W / 2, y: y + 41, class: 'status'},
                        clip(status.replace(/_/g, ' '), 24)) : null);
  });
  const desc = steps.map((st) => `${st.name}${st.status ? ' (' + st.status + ')' : ''}` +
                                 (st.after?.length ? ` after ${st.after.join(', ')}` : ''))
                    .join('; ');
  return s('svg', {class: 'graph', viewBox: `0 0 ${width} ${height}`, role: 'img',
                   'aria-label': `${label}: ${desc}`, width, height},
           s('defs', null,
             s('marker', {id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7,
                          markerHeight: 7, orient: 'auto-start-reverse'},
               s('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead'}))),
           edges, nodes);
}
