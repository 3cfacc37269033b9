"""A cube's graph as one self-contained HTML page: no server, no network, opens in a browser.

The page carries the nodes and edges as JSON and ~100 lines of plain JavaScript: a force
layout on a canvas (topics large, subtopics medium, records and entities small), drag to
move a node, wheel to zoom, hover for the full label, and a checkbox per edge type.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable

from memsvc.models import GraphEdge, GraphNode

__all__ = ["render_graph_html"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>memsvc graph: __TITLE__</title>
<style>
body{margin:0;font:13px system-ui,sans-serif;background:#fafafa}
#bar{position:fixed;top:0;left:0;right:0;padding:6px 10px;background:#fff;
border-bottom:1px solid #ddd;z-index:2}
#bar label{margin-right:10px}#tip{position:fixed;pointer-events:none;background:#222;
color:#fff;padding:4px 6px;border-radius:4px;max-width:420px;display:none;z-index:3}
canvas{display:block}
</style></head><body>
<div id="bar"><b>__TITLE__</b> &middot; <span id="count"></span> &middot; edges:
<span id="types"></span></div><div id="tip"></div><canvas id="c"></canvas>
<script id="data" type="application/json">__DATA__</script>
<script>
const D = JSON.parse(document.getElementById('data').textContent);
const COLORS = {topic:'#d62728', subtopic:'#ff7f0e', record:'#1f77b4', entity:'#2ca02c'};
const ECOL = {part_of:'#bbb', mentions:'#9c9', follows:'#9bd', related:'#c9c',
  supersedes:'#e55', duplicate_of:'#555'};
const cv = document.getElementById('c'), ctx = cv.getContext('2d');
let W, H, scale = 1, ox = 0, oy = 0, drag = null, pan = null;
function resize(){ W = cv.width = innerWidth; H = cv.height = innerHeight; }
resize(); addEventListener('resize', resize);
const idx = {}; D.nodes.forEach((n, i) => { idx[n.id] = i;
  n.x = (Math.random() - .5) * 600; n.y = (Math.random() - .5) * 600; n.vx = 0; n.vy = 0;
  n.r = n.type === 'topic' ? 10 : n.type === 'subtopic' ? 7 : 4;
  n.c = COLORS[n.type] || COLORS[n.kind] || '#888'; });
const edges = D.edges.filter(e => e.source in idx && e.target in idx)
  .map(e => ({a: D.nodes[idx[e.source]], b: D.nodes[idx[e.target]], type: e.type}));
const shown = {}; const types = [...new Set(edges.map(e => e.type))];
const tbox = document.getElementById('types');
types.forEach(t => { shown[t] = true; const l = document.createElement('label');
  l.innerHTML = '<input type="checkbox" checked> <span style="color:' + (ECOL[t] || '#888') +
  '">' + t + '</span>'; l.firstChild.onchange = ev => { shown[t] = ev.target.checked; };
  tbox.appendChild(l); });
document.getElementById('count').textContent = D.nodes.length + ' nodes, ' + edges.length +
  ' edges';
function step(){
  const N = D.nodes, k = 0.02;
  const hop = N.length > 800 ? 4 : 1;  // sample repulsion pairs on big graphs
  for (let i = 0; i < N.length; i++) for (let j = i + 1; j < N.length; j += hop) {
    const a = N[i], b = N[j]; let dx = a.x - b.x, dy = a.y - b.y, d2 = dx*dx + dy*dy + 1;
    if (d2 > 90000) continue; const f = 60 / d2;
    a.vx += dx*f; a.vy += dy*f; b.vx -= dx*f; b.vy -= dy*f; }
  edges.forEach(e => { if (!shown[e.type]) return; const dx = e.b.x - e.a.x, dy = e.b.y - e.a.y;
    const len = e.type === 'part_of' ? 40 : 70; const d = Math.sqrt(dx*dx + dy*dy) + .01;
    const f = k * (d - len) / d; e.a.vx += dx*f; e.a.vy += dy*f; e.b.vx -= dx*f; e.b.vy -= dy*f; });
  N.forEach(n => { n.vx -= n.x * 0.002; n.vy -= n.y * 0.002;
    if (n !== drag) { n.x += n.vx; n.y += n.vy; } n.vx *= 0.6; n.vy *= 0.6; });
}
function draw(){
  ctx.clearRect(0, 0, W, H); ctx.save();
  ctx.translate(W/2 + ox, H/2 + oy); ctx.scale(scale, scale);
  edges.forEach(e => { if (!shown[e.type]) return; ctx.strokeStyle = ECOL[e.type] || '#ccc';
    ctx.beginPath(); ctx.moveTo(e.a.x, e.a.y); ctx.lineTo(e.b.x, e.b.y); ctx.stroke(); });
  D.nodes.forEach(n => { ctx.fillStyle = n.c; ctx.beginPath();
    ctx.arc(n.x, n.y, n.r, 0, 7); ctx.fill(); if (n.r > 5) { ctx.fillStyle = '#222';
      ctx.fillText(n.label.slice(0, 40), n.x + n.r + 2, n.y + 4); } });
  ctx.restore();
}
function loop(){ step(); draw(); requestAnimationFrame(loop); } loop();
function at(ev){ const x = (ev.clientX - W/2 - ox) / scale, y = (ev.clientY - H/2 - oy) / scale;
  let best = null, bd = 1e9; D.nodes.forEach(n => { const d = (n.x-x)**2 + (n.y-y)**2;
    if (d < bd && d < (n.r + 4)**2) { bd = d; best = n; } }); return best; }
const tip = document.getElementById('tip');
cv.onmousedown = ev => { drag = at(ev); if (!drag) pan = [ev.clientX - ox, ev.clientY - oy]; };
onmouseup = () => { drag = null; pan = null; };
cv.onmousemove = ev => {
  if (drag) {
    drag.x = (ev.clientX - W/2 - ox) / scale; drag.y = (ev.clientY - H/2 - oy) / scale; }
  else if (pan) { ox = ev.clientX - pan[0]; oy = ev.clientY - pan[1]; }
  const n = at(ev); if (n) { tip.style.display = 'block'; tip.style.left = ev.clientX + 12 + 'px';
    tip.style.top = ev.clientY + 12 + 'px'; tip.textContent = n.type + ': ' + n.label; }
  else tip.style.display = 'none'; };
cv.onwheel = ev => { ev.preventDefault(); scale *= ev.deltaY < 0 ? 1.1 : 0.9; };
</script></body></html>
"""


def render_graph_html(title: str, nodes: Iterable[GraphNode], edges: Iterable[GraphEdge]) -> str:
    data = {
        "nodes": [n.model_dump(mode="json") for n in nodes],
        "edges": [e.model_dump(mode="json") for e in edges],
    }
    # "</" cannot end the script element early once escaped
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)
