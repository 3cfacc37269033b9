"""A cube's graph as one self-contained HTML page: no server, no network, opens in a browser.

The page inlines Cytoscape.js (vendored in memsvc/graph_assets/ from npm, version and hash in
VENDORED.json; `make graph-assets` refreshes it), the nodes and edges as JSON, and its own
script (graph_assets/page.js): the topic tree as nested clusters, search, a toggle per edge
type, a node's neighbourhood on hover and click. A Content-Security-Policy forbids every
request, so the page works the same offline.

At most `MAX_NODES` nodes are drawn (the whole tree first, then the best connected records
and entities): the page stays responsive at that size on a laptop's software canvas.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from typing import Any

from memsvc.models import GraphEdge, GraphNode

__all__ = ["MAX_NODES", "render_graph_html", "vendored_library"]

MAX_NODES = 2000

_ASSETS = resources.files("memsvc") / "graph_assets"
_SLOT = re.compile(r"__(TITLE|DATA|CYTOSCAPE|PAGE_JS)__")


def vendored_library() -> dict[str, Any]:
    """The vendored graph library's manifest: package, version, file, sha256, license."""
    return json.loads((_ASSETS / "VENDORED.json").read_text(encoding="utf-8"))


def _keep(nodes: list[GraphNode], edges: list[GraphEdge], limit: int) -> list[GraphNode]:
    """Nodes to draw when there are too many: topics and subtopics, then records and
    entities by degree (then id, so the same export draws the same page)."""
    if len(nodes) <= limit:
        return nodes
    degree: Counter[str] = Counter()
    for e in edges:
        degree[e.source] += 1
        degree[e.target] += 1

    def rank(n: GraphNode) -> tuple[int, int, str]:
        return (0 if n.kind == "topic" else 1, -degree[n.id], n.id)

    return sorted(nodes, key=rank)[:limit]


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no "<", ">" or "&" can end or open a tag."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_graph_html(
    title: str,
    nodes: Iterable[GraphNode],
    edges: Iterable[GraphEdge],
    *,
    max_nodes: int = MAX_NODES,
) -> str:
    all_nodes, all_edges = list(nodes), list(edges)
    kept = _keep(all_nodes, all_edges, max_nodes)
    ids = {n.id for n in kept}
    shown = [e for e in all_edges if e.source in ids and e.target in ids]
    data = {
        "nodes": [n.model_dump(mode="json") for n in kept],
        "edges": [e.model_dump(mode="json") for e in shown],
        "total": {"nodes": len(all_nodes), "edges": len(all_edges)},
    }
    lib = (_ASSETS / vendored_library()["file"]).read_text(encoding="utf-8")
    parts = {
        "TITLE": html.escape(title),
        "DATA": _script_json(data),
        "CYTOSCAPE": lib,
        "PAGE_JS": (_ASSETS / "page.js").read_text(encoding="utf-8"),
    }
    page = (_ASSETS / "page.html").read_text(encoding="utf-8")
    return _SLOT.sub(lambda m: parts[m.group(1)], page)
