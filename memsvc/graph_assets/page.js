// The `memsvc graph` page: a cube's topic tree and graph drawn by Cytoscape.js (inlined above).
// Default layout: the topic tree as nested clusters (topic > subtopic > records), laid out
// here in one pass (no force simulation), so it opens at once at the node limit.
(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('graph-data').textContent);
  const NODE_COLOR = {topic: '#c0392b', subtopic: '#e67e22', record: '#2f6db5',
    entity: '#2e9d4f'};
  const EDGE_COLOR = {part_of: '#8d99a6', mentions: '#6dbb6d', follows: '#6aa6d6',
    related: '#a77bc4', supersedes: '#e04848', duplicate_of: '#444'};
  const big = D.nodes.length > 800;
  // Drawn at first: the tree and the history of facts (and near neighbours on a small
  // graph). Mentions and session order join nearly every record to distant ones; they are
  // one click away.
  const SHOWN_AT_START = {part_of: true, related: !big, supersedes: true, duplicate_of: true};
  const GOLDEN = Math.PI * (3 - Math.sqrt(5));
  const COSE_MAX = 400;
  const fontFor = (r) => Math.max(14, Math.min(40, r / 5));  // a cluster name's size
  const $ = (id) => document.getElementById(id);

  const cat = (n) => n.type === 'topic' ? 'topic' : n.type === 'subtopic' ? 'subtopic' : n.kind;
  const short = (s, k) => s.length > k ? s.slice(0, k - 1) + '\u2026' : s;
  const elements = [];
  D.nodes.forEach((n) => elements.push({group: 'nodes', data: {id: n.id, label: n.label,
    short: short(n.label, 60), kind: n.kind, type: n.type, cat: cat(n)}}));
  const ids = new Set(D.nodes.map((n) => n.id));
  const edgeCount = {};
  const adjacent = {};  // node id -> [edge type, other end's id]
  D.edges.forEach((e, i) => {
    if (!ids.has(e.source) || !ids.has(e.target)) return;
    edgeCount[e.type] = (edgeCount[e.type] || 0) + 1;
    (adjacent[e.source] = adjacent[e.source] || []).push([e.type, e.target]);
    (adjacent[e.target] = adjacent[e.target] || []).push([e.type, e.source]);
    elements.push({group: 'edges', data: {id: 'e' + i, source: e.source, target: e.target,
      type: e.type}});
  });

  // ---- the topic-tree layout ---------------------------------------------------------
  // Groups: each subtopic with its records and the entities mostly mentioned there; a
  // topic holds its subtopics; entities mentioned across 3+ topics and records not yet in
  // the tree get groups of their own. Records lie on a sunflower spiral around their
  // subtopic; subtopics are packed around their topic, topics around the centre.
  function topicTree() {
    const parent = {};
    D.edges.forEach((e) => { if (e.type === 'part_of') parent[e.source] = e.target; });
    const byId = {};
    D.nodes.forEach((n) => { byId[n.id] = n; });
    const subs = {}, topics = {};
    D.nodes.forEach((n) => {
      if (n.type === 'subtopic') {
        subs[n.id] = {id: n.id, members: []};
        const t = parent[n.id];
        if (t && byId[t]) (topics[t] = topics[t] || {id: t, subs: []}).subs.push(n.id);
      } else if (n.type === 'topic') {
        topics[n.id] = topics[n.id] || {id: n.id, subs: []};
      }
    });
    const topicOf = (sub) => parent[sub] || sub;
    const loose = {id: null, members: [], label: 'not yet in the topic tree'};
    const shared = {id: null, members: [], label: 'entities across topics'};
    const mentionedIn = {};
    D.edges.forEach((e) => {
      if (e.type !== 'mentions') return;
      const sub = parent[e.source];
      if (sub && subs[sub]) (mentionedIn[e.target] = mentionedIn[e.target] || []).push(sub);
    });
    D.nodes.forEach((n) => {
      if (n.type === 'topic' || n.type === 'subtopic') return;
      if (n.kind === 'entity') {
        const where = mentionedIn[n.id] || [];
        const perSub = {};
        where.forEach((s) => { perSub[s] = (perSub[s] || 0) + 1; });
        const spread = new Set(where.map(topicOf)).size;
        const best = Object.keys(perSub).sort((a, b) => perSub[b] - perSub[a])[0];
        (spread >= 3 || !best ? shared : subs[best]).members.push(n.id);
      } else {
        const p = parent[n.id];
        (p && subs[p] ? subs[p] : loose).members.push(n.id);
      }
    });
    return {subs, topics, loose, shared, byId};
  }

  const STEP = 13;  // distance between neighbouring records in a cluster
  function sunflower(members, cx, cy, inner, pos) {
    members.forEach((id, i) => {
      const r = inner + STEP * Math.sqrt(i + 0.5), a = i * GOLDEN;
      pos[id] = {x: cx + r * Math.cos(a), y: cy + r * Math.sin(a)};
    });
    return inner + STEP * Math.sqrt(members.length + 0.5) + STEP;
  }

  // Circles (r) placed largest first along a spiral, each at the first spot where it
  // overlaps none placed before; `hole` keeps the centre free. Returns {x, y} per circle
  // (relative to the centre) and the radius of the whole.
  function pack(circles, hole) {
    const placed = [], out = [];
    const order = circles.map((c, i) => i).sort((a, b) => circles[b].r - circles[a].r);
    order.forEach((i) => {
      const r = circles[i].r;
      let x = 0, y = 0;
      for (let t = 0; ; t += 0.12) {
        const d = hole > 0 || placed.length ? hole + r + 4 * t * (1 + r / 60) : 0;
        x = d * Math.cos(t * 2.2); y = d * Math.sin(t * 2.2);
        if (placed.every((p) => (p.x - x) ** 2 + (p.y - y) ** 2 >= (p.r + r + 6) ** 2)) break;
      }
      placed.push({x, y, r}); out[i] = {x, y};
    });
    let radius = hole;
    placed.forEach((p) => { radius = Math.max(radius, Math.hypot(p.x, p.y) + p.r); });
    return {at: out, radius: radius + 8};
  }

  function topicPositions() {
    const T = topicTree(), pos = {}, halos = [];
    // each subtopic cluster, centred at (0, 0) for now
    const subLocal = {};
    Object.values(T.subs).forEach((s) => {
      const local = {};
      const r = sunflower(s.members, 0, 0, 16, local);
      subLocal[s.id] = {r, local};
    });
    // a cluster's name sits above its halo: room for it in the packing
    const blocks = [];  // one per topic (or loose group): radius and a placer
    Object.values(T.topics).forEach((t) => {
      const inside = t.subs.map((s) => ({r: subLocal[s].r}));
      const packed = pack(inside, inside.length ? 26 : 0);
      blocks.push({r: packed.radius + 1.4 * fontFor(packed.radius), place: (cx, cy) => {
        pos[t.id] = {x: cx, y: cy};
        halos.push({id: 'halo:' + t.id, label: T.byId[t.id].label, x: cx, y: cy,
          r: packed.radius});
        t.subs.forEach((s, i) => {
          const sx = cx + packed.at[i].x, sy = cy + packed.at[i].y;
          pos[s] = {x: sx, y: sy};
          const L = subLocal[s].local;
          Object.keys(L).forEach((id) => { pos[id] = {x: sx + L[id].x, y: sy + L[id].y}; });
        });
      }});
    });
    // subtopics with no topic node on the page: clusters of their own
    const inTopic = new Set(Object.values(T.topics).flatMap((t) => t.subs));
    Object.values(T.subs).filter((s) => !inTopic.has(s.id)).forEach((s) => {
      blocks.push({r: subLocal[s.id].r, place: (cx, cy) => {
        pos[s.id] = {x: cx, y: cy};
        const L = subLocal[s.id].local;
        Object.keys(L).forEach((id) => { pos[id] = {x: cx + L[id].x, y: cy + L[id].y}; });
      }});
    });
    [T.shared, T.loose].forEach((g) => {
      if (!g.members.length) return;
      const local = {};
      const r = sunflower(g.members, 0, 0, 0, local);
      blocks.push({r: r + 1.4 * fontFor(r), place: (cx, cy) => {
        halos.push({id: 'halo:' + g.label, label: g.label, x: cx, y: cy, r});
        Object.keys(local).forEach((id) => { pos[id] = {x: cx + local[id].x,
          y: cy + local[id].y}; });
      }});
    });
    const all = pack(blocks, 0);
    blocks.forEach((b, i) => b.place(all.at[i].x, all.at[i].y));
    return {pos, halos};
  }

  // ---- the view ----------------------------------------------------------------------
  const cy = cytoscape({
    container: $('cy'), elements, layout: {name: 'preset'},
    minZoom: 0.02, maxZoom: 6,
    textureOnViewport: big, hideEdgesOnViewport: big, motionBlur: false,
    style: [
      {selector: 'node', style: {'width': 7, 'height': 7, 'border-width': 0,
        'background-color': (n) => NODE_COLOR[n.data('cat')] || '#888', 'label': '',
        'font-size': 9, 'color': '#222', 'text-outline-color': '#fff',
        'text-outline-width': 2, 'min-zoomed-font-size': 7}},
      {selector: 'node[cat = "entity"]', style: {'shape': 'diamond', 'width': 8,
        'height': 8}},
      {selector: 'node[cat = "subtopic"]', style: {'width': 14, 'height': 14,
        'label': 'data(label)', 'font-size': 20, 'font-weight': 'bold',
        'text-valign': 'bottom', 'text-margin-y': 2, 'text-max-width': 230,
        'text-wrap': 'wrap', 'color': '#8a4a0c', 'min-zoomed-font-size': 5}},
      {selector: 'node[cat = "topic"]', style: {'width': 22, 'height': 22,
        'label': 'data(label)', 'font-size': 15, 'font-weight': 'bold', 'color': '#7a1f14',
        'text-valign': 'bottom', 'text-margin-y': 3, 'min-zoomed-font-size': 5}},
      {selector: 'node[cat = "topic"].haloed', style: {'label': ''}},
      {selector: 'node.halo', style: {'shape': 'ellipse', 'width': 'data(d)',
        'height': 'data(d)', 'background-color': '#9aa7b5',
        'background-opacity': 0.09, 'border-width': 1, 'border-color': '#c7ced6',
        'label': 'data(label)', 'text-valign': 'top', 'text-halign': 'center',
        'text-wrap': 'wrap', 'text-max-width': 'data(tw)',
        'text-margin-y': -4, 'font-size': 'data(fs)', 'font-weight': 'bold',
        'color': '#7a1f14', 'text-outline-width': 3, 'min-zoomed-font-size': 4,
        'events': 'no', 'z-index': 0, 'z-compound-depth': 'bottom'}},
      {selector: 'edge', style: {'width': 0.8, 'curve-style': 'haystack',
        'haystack-radius': 0, 'opacity': 0.45,
        'line-color': (e) => EDGE_COLOR[e.data('type')] || '#bbb'}},
      {selector: '.faded', style: {'opacity': 0.08, 'label': ''}},
      {selector: 'node.near', style: {'label': 'data(short)', 'font-size': 10,
        'text-max-width': 220, 'text-wrap': 'ellipsis', 'z-index': 9}},
      {selector: 'edge.near', style: {'opacity': 0.95, 'width': 1.6, 'z-index': 9}},
      {selector: 'node.match', style: {'border-width': 3, 'border-color': '#111',
        'label': 'data(short)', 'font-size': 16, 'text-max-width': 300,
        'text-wrap': 'ellipsis', 'min-zoomed-font-size': 6, 'z-index': 10}},
      {selector: 'node:selected', style: {'border-width': 3, 'border-color': '#f1c40f'}},
    ],
  });
  const dataNodes = cy.nodes();  // the cube's nodes (halos come after, not among them)
  // An edge type switched off is taken out of the graph (and put back when switched on):
  // hidden edges then cost nothing to draw, and neighbourhoods follow what is shown.
  const hidden = {};
  function showType(t, on) {
    if (on && hidden[t]) {
      hidden[t].restore();
      delete hidden[t];
    } else if (!on && !hidden[t]) {
      hidden[t] = cy.edges('[type = "' + t + '"]').remove();
    }
  }
  Object.keys(edgeCount).forEach((t) => showType(t, !!SHOWN_AT_START[t]));

  function drawHalos(halos) {
    cy.batch(() => {
      cy.remove('node.halo');
      cy.add(halos.map((h) => ({group: 'nodes', classes: 'halo', selectable: false,
        grabbable: false, position: {x: h.x, y: h.y},
        data: {id: h.id, label: short(h.label, 48), halo: true,
          fs: fontFor(h.r), d: 2 * h.r,
          tw: Math.max(120, 2.2 * h.r)}})));
    });
  }

  function fit() {
    cy.stop(true);  // an animation still running would move the view after this
    cy.fit(cy.nodes(), 12);
  }

  // Bring these elements into view, no closer than twice the normal size (a lone node
  // fitted to the window would fill it).
  function view(eles, padding) {
    const bb = eles.boundingBox();
    const zoom = Math.min(2, (cy.width() - 2 * padding) / Math.max(bb.w, 1),
      (cy.height() - 2 * padding) / Math.max(bb.h, 1));
    cy.stop(true).animate({zoom, center: {eles}}, {duration: 250});
  }

  function runLayout(name) {
    cy.remove('node.halo');
    dataNodes.filter('[cat = "topic"]').toggleClass('haloed', name === 'topics');
    if (name === 'topics') {
      const {pos, halos} = topicPositions();
      dataNodes.layout({name: 'preset', positions: (n) => pos[n.id()] || {x: 0, y: 0},
        fit: false}).run();
      drawHalos(halos);
    } else if (name === 'concentric') {
      const rank = {topic: 3, subtopic: 2, entity: 1, record: 0};
      dataNodes.layout({name: 'concentric', fit: false, animate: false, minNodeSpacing: 4,
        concentric: (n) => rank[n.data('cat')] || 0, levelWidth: () => 1}).run();
    } else {
      // over the edges shown: springs along them, every node pushing every other
      dataNodes.union(cy.edges()).layout({name: 'cose', fit: false, animate: false,
        randomize: true, numIter: 250, nodeRepulsion: () => 6000, idealEdgeLength: () => 30,
        componentSpacing: 60}).run();
    }
    fit();
  }

  // ---- neighbourhood, search, toggles --------------------------------------------------
  function neighbourhood(n) {
    const edges = n.connectedEdges();
    return n.union(edges).union(edges.connectedNodes());
  }
  let focused = null;
  function clearMarks() {
    cy.elements().removeClass('faded near match');
  }
  function focus(n, fit) {
    focused = n;
    cy.batch(() => {
      clearMarks();
      const near = neighbourhood(n);
      cy.elements().not(near).not('.halo').addClass('faded');
      near.addClass('near');
    });
    cy.nodes(':selected').unselect();
    n.select();
    if (fit) view(neighbourhood(n), 60);
    showPanel(n);
  }
  function unfocus() {
    focused = null;
    cy.batch(clearMarks);
    $('panel').style.display = 'none';
  }
  function showPanel(n) {
    const p = $('panel');
    p.textContent = '';
    const h = document.createElement('h3');
    h.textContent = n.data('label');
    const k = document.createElement('div');
    k.className = 'kind';
    k.textContent = n.data('kind') + ' \u00b7 ' + n.data('type') + ' \u00b7 ' + n.id();
    p.append(h, k);
    const byType = {};  // over every edge type, the hidden ones too
    (adjacent[n.id()] || []).forEach(([t, other]) => {
      (byType[t] = byType[t] || []).push(cy.getElementById(other));
    });
    Object.keys(byType).sort().forEach((t) => {
      const b = document.createElement('b');
      b.textContent = t + ' (' + byType[t].length + ')' + (hidden[t] ? ', hidden' : '');
      const ul = document.createElement('ul');
      byType[t].slice(0, 25).forEach((m) => {
        const li = document.createElement('li');
        li.textContent = short(m.data('label'), 90);
        li.onclick = () => focus(m, true);
        ul.append(li);
      });
      p.append(b, ul);
    });
    p.style.display = 'block';
  }

  cy.on('tap', 'node', (ev) => { if (!ev.target.hasClass('halo')) focus(ev.target, false); });
  cy.on('tap', (ev) => { if (ev.target === cy) unfocus(); });
  let hovered = null;
  cy.on('mouseover', 'node', (ev) => {
    const n = ev.target;
    if (focused || n.hasClass('halo')) return;
    hovered = neighbourhood(n);
    hovered.addClass('near');
  });
  cy.on('mouseout', 'node', () => {
    if (hovered) hovered.removeClass('near');
    hovered = null;
  });

  const labels = dataNodes.map((n) => [n, n.data('label').toLowerCase()]);
  let matches = cy.collection();
  function search(q) {
    q = q.trim().toLowerCase();
    focused = null;
    $('panel').style.display = 'none';
    cy.batch(() => {
      clearMarks();
      matches = cy.collection();
      if (q.length < 2) return;
      matches = cy.collection(labels.filter(([, l]) => l.includes(q)).map(([n]) => n));
      cy.elements().not(matches).not('.halo').addClass('faded');
      matches.addClass('match');
    });
    $('found').textContent = q.length < 2 ? '' : matches.length + ' found';
    if (matches.length) view(matches, 80);
  }
  let timer = 0;
  $('search').addEventListener('input', (ev) => {
    clearTimeout(timer);
    timer = setTimeout(() => search(ev.target.value), 120);
  });
  $('search').addEventListener('keydown', (ev) => {
    if (ev.key !== 'Enter') return;
    clearTimeout(timer);
    search(ev.target.value);
    if (matches.length) focus(matches[0], true);
  });

  const types = $('types');
  Object.keys(edgeCount).sort().forEach((t) => {
    const l = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = !!SHOWN_AT_START[t];
    box.dataset.type = t;
    box.addEventListener('change', () => {
      cy.batch(() => showType(t, box.checked));
      if (focused) focus(focused, false);
    });
    const swatch = document.createElement('i');
    swatch.style.background = EDGE_COLOR[t] || '#bbb';
    l.append(box, swatch, document.createTextNode(t + ' ' + edgeCount[t]));
    types.append(l);
  });

  const total = D.total || {nodes: D.nodes.length, edges: D.edges.length};
  const drawnEdges = Object.values(edgeCount).reduce((a, b) => a + b, 0);
  $('count').textContent = D.nodes.length + ' nodes, ' + drawnEdges + ' edges';
  if (total.nodes > D.nodes.length) {
    $('note').textContent = '(' + total.nodes + ' nodes in the export: the ' +
      D.nodes.length + ' best connected are drawn)';
  }
  $('legend').innerHTML = '';
  ['topic', 'subtopic', 'record', 'entity'].forEach((c) => {
    const s = document.createElement('span');
    s.style.background = NODE_COLOR[c];
    $('legend').append(s, document.createTextNode(c));
  });
  // a force layout costs O(nodes^2) per step in this thread: offered on smaller graphs only
  const cose = document.querySelector('#layout option[value="cose"]');
  if (D.nodes.length > COSE_MAX) {
    cose.disabled = true;
    cose.title = 'offered up to ' + COSE_MAX + ' nodes';
  }
  $('layout').addEventListener('change', (ev) => { unfocus(); runLayout(ev.target.value); });
  $('fit').addEventListener('click', fit);
  const setBar = () => document.documentElement.style.setProperty('--bar',
    $('bar').offsetHeight + 'px');
  setBar();
  addEventListener('resize', () => { setBar(); cy.resize(); });
  cy.resize();
  runLayout('topics');
  window.memsvcGraph = {cy, dataNodes, edgeCount, ready: true};
})();
