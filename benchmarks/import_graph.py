"""The import graph of ``verify`` and ``derive``, read from the source files (ast; nothing is imported).

    python benchmarks/import_graph.py                       # the layers, arrows up, cycles (exit 1 if any)
    python benchmarks/import_graph.py --svg docs/import-graph.svg --dot docs/import-graph.dot
    python benchmarks/import_graph.py --root /tmp/old-checkout --svg before.svg   # another checkout, e.g. main

Every ``import`` and ``from ... import`` counts, at module level or inside a function (a lazy import is still an
arrow), except those under ``if TYPE_CHECKING:`` (annotations only, never executed). ``from pkg import name`` is
an arrow to ``pkg.name`` when that is a module, else to ``pkg``. Imports through the flat paths of the old layout
(``verify.mc``) are arrows to the module they alias (``verify/_aliases.py``), so the graph of an older checkout
uses the same layers. A package's ``__init__`` run by importing its submodule is not an arrow.

The layers, lowest first (``LAYERS``): the base (errors, lazy modules, aliases), model, numerics, checks, then
testing and frameworks, then the application and the CLI; ``derive`` is a separate stack whose top is its
document builder (``derive.latex``). An arrow up (to a higher layer) or any cycle is a finding.
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("verify", "derive")

# layer name -> rank; a module may import modules of its own rank or lower only
LAYERS = {"base": 0, "model": 1, "numerics": 2, "checks": 3, "testing": 4, "frameworks": 4, "app": 5, "cli": 6,
          "derive": 0, "derive-documents": 1}
BASE = {"verify", "verify.errors", "verify._lazy", "verify._aliases", "verify._startup"}
DOCUMENT_BUILDER = {"derive.latex"}     # derive's documents: only the application and the CLI may import it
CORE_LAYERS = ("base", "model", "numerics", "checks", "testing", "frameworks")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    lazy: bool          # inside a function (imported when called)
    line: int


def aliases(root: Path) -> dict[str, str]:
    """The old flat path -> new path map of ``verify/_aliases.py`` in ``root`` (empty for the flat layout)."""
    path = root / "verify" / "_aliases.py"
    if not path.exists():
        return {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MOVED" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages (conftest files excluded)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if path.name == "conftest.py":
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the statements under ``if TYPE_CHECKING:`` (never executed)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(name: str, path: Path, modules: dict[str, Path], moved: dict[str, str]) -> list[Edge]:
    """The arrows out of one file: internal modules only (``verify.*``, ``derive.*``), old paths resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    lazy_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy_nodes.update(id(n) for n in ast.walk(node))

    def known(target: str) -> str | None:
        target = moved.get(target, target)
        return target if target in modules else None

    edges = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.append(full if known(full) else base)
        for target in targets:
            resolved = known(target)
            while resolved is None and "." in target:      # import a.b.c where only a.b is ours
                target = target.rsplit(".", 1)[0]
                resolved = known(target)
            if resolved and resolved != name:
                edges.append(Edge(name, resolved, id(node) in lazy_nodes, node.lineno))
    return sorted(set(edges), key=lambda e: (e.line, e.target))


def layer(module: str, moved: dict[str, str] | None = None) -> str:
    """The layer of a module (its path in the layered tree, after resolving an old flat path)."""
    module = (moved or {}).get(module, module)
    parts = module.split(".")
    if parts[0] == "derive":     # the package itself re-exports render_document: it sits with the builder
        return "derive-documents" if module in DOCUMENT_BUILDER or module == "derive" else "derive"
    if module in BASE:
        return "base"
    if module == "verify.__main__":
        return "cli"
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    return "unplaced"           # a flat module nobody has put in a layer yet: treated as the edge (rank 4)


@dataclass
class Graph:
    modules: dict[str, Path]
    edges: list[Edge]
    placement: dict[str, str]       # old flat path -> layered path (this checkout's aliases): places an old tree

    def layer(self, module: str) -> str:
        return layer(module, self.placement)

    def rank(self, module: str) -> int:
        return LAYERS.get(self.layer(module), 4)

    def upward(self) -> list[Edge]:
        """Arrows to a higher layer, and arrows from derive into verify (derive never imports verify)."""
        out = []
        for e in self.edges:
            s, t = e.source.split(".")[0], e.target.split(".")[0]
            if s == "derive" and t == "verify":
                out.append(e)
            elif s == t and self.rank(e.target) > self.rank(e.source):
                out.append(e)
        return out

    def cycles(self) -> list[list[str]]:
        """Strongly connected components with more than one module (Tarjan), each sorted."""
        succ: dict[str, set[str]] = {m: set() for m in self.modules}
        for e in self.edges:
            succ[e.source].add(e.target)
        index, low, stack, on, out = {}, {}, [], set(), []

        def visit(v):
            index[v] = low[v] = len(index)
            stack.append(v)
            on.add(v)
            for w in sorted(succ[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
        for v in sorted(succ):
            if v not in index:
                visit(v)
        return sorted(out)

    def cycle_edges(self) -> set[tuple[str, str]]:
        members = {m: i for i, comp in enumerate(self.cycles()) for m in comp}
        return {(e.source, e.target) for e in self.edges
                if e.source in members and members[e.source] == members.get(e.target)}


def build(root: Path = ROOT) -> Graph:
    modules = module_files(root)
    moved = aliases(root)
    edges = [e for name, path in modules.items() for e in imports_of(name, path, modules, moved)]
    return Graph(modules, edges, {**aliases(ROOT), **moved})


def _short(module: str) -> str:
    return module.split(".", 1)[1] if "." in module else module


def dot(graph: Graph) -> str:
    """Graphviz DOT text: one cluster per layer, arrows up and cycle arrows red."""
    bad = {(e.source, e.target) for e in graph.upward()} | graph.cycle_edges()
    by_layer: dict[str, list[str]] = {}
    for m in graph.modules:
        by_layer.setdefault(graph.layer(m), []).append(m)
    lines = ["digraph imports {", "  rankdir=BT; node [shape=box, fontsize=10];"]
    for name in sorted(by_layer, key=lambda n: (n.startswith("derive"), LAYERS.get(n, 4), n)):
        lines.append(f'  subgraph "cluster_{name}" {{ label="{name}";')
        lines += [f'    "{m}" [label="{_short(m)}"];' for m in sorted(by_layer[name])]
        lines.append("  }")
    for s, t in sorted({(e.source, e.target) for e in graph.edges}):
        style = ' [color=red, penwidth=2]' if (s, t) in bad else ""
        lines.append(f'  "{s}" -> "{t}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(graph: Graph, title: str) -> str:
    """A layered drawing without graphviz: one row per layer (lowest at the bottom), arrows as curves; grey
    arrows point down or sideways, red ones go up a layer or close a cycle."""
    bad = {(e.source, e.target) for e in graph.upward()} | graph.cycle_edges()
    rows: dict[tuple[int, str], list[str]] = {}
    for m in graph.modules:
        name = graph.layer(m)
        key = (LAYERS.get(name, 4) + (10 if name.startswith("derive") else 0), name)
        rows.setdefault(key, []).append(m)
    order = sorted(rows)
    box_w, box_h, gap_x, gap_y, left = 118, 20, 8, 46, 130
    width = left + max(len(v) for v in rows.values()) * (box_w + gap_x) + 20
    height = 60 + len(order) * (box_h + gap_y)
    pos = {}
    for r, key in enumerate(order):
        y = height - 40 - r * (box_h + gap_y)
        for c, m in enumerate(sorted(rows[key])):
            pos[m] = (left + c * (box_w + gap_x), y)
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;")  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="10">',
           '<defs><marker id="a" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="5" markerHeight="5" '
           'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#999"/></marker><marker id="r" viewBox="0 0 6 6" '
           'refX="6" refY="3" markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0 L6,3 L0,6 z" '
           'fill="#d00"/></marker></defs>',
           f'<text x="10" y="18" font-size="13" font-weight="bold">{esc(title)}</text>']
    for r, key in enumerate(order):
        y = height - 40 - r * (box_h + gap_y)
        out.append(f'<text x="10" y="{y + 14}" font-weight="bold">{esc(key[1])}</text>')
    for s, t in sorted({(e.source, e.target) for e in graph.edges}, key=lambda st: st in bad):
        (x1, y1), (x2, y2) = pos[s], pos[t]
        x1, x2 = x1 + box_w / 2, x2 + box_w / 2
        y1, y2 = (y1, y2 + box_h) if y2 > y1 else (y1 + box_h, y2) if y2 < y1 else (y1, y2)
        bend = 0 if y1 != y2 else -30
        colour, marker, w = ("#d00", "r", 1.6) if (s, t) in bad else ("#bbb", "a", 0.6)
        out.append(f'<path d="M{x1:.0f},{y1:.0f} C{x1:.0f},{(y1 + y2) / 2 + bend:.0f} {x2:.0f},'
                   f'{(y1 + y2) / 2 + bend:.0f} {x2:.0f},{y2:.0f}" fill="none" stroke="{colour}" '
                   f'stroke-width="{w}" marker-end="url(#{marker})"/>')
    for m, (x, y) in pos.items():
        label = m.rsplit(".", 1)[-1] if m.count(".") >= 2 else _short(m)    # the row names the layer
        out.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="3" fill="#f4f6fb" stroke="#557"/>'
                   f'<text x="{x + 4}" y="{y + 14}">{esc(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def summary(graph: Graph) -> str:
    up, cycles = graph.upward(), graph.cycles()
    lines = [f"{len(graph.modules)} modules, {len({(e.source, e.target) for e in graph.edges})} arrows "
             f"({sum(e.lazy for e in graph.edges)} lazy imports), {len(up)} arrows up, {len(cycles)} cycles"]
    lines += [f"  up: {e.source} ({graph.layer(e.source)}) -> {e.target} ({graph.layer(e.target)}), line {e.line}"
              + (" (lazy)" if e.lazy else "") for e in up]
    lines += ["  cycle: " + " <-> ".join(c) for c in cycles]
    unplaced = sorted(m for m in graph.modules if graph.layer(m) == "unplaced")
    if unplaced:
        lines.append("  not in a layer yet (treated as the edge): " + ", ".join(unplaced))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="a checkout of the repository (default: this one)")
    parser.add_argument("--dot", type=Path, help="write Graphviz DOT text here")
    parser.add_argument("--svg", type=Path, help="write a layered SVG drawing here (no graphviz needed)")
    parser.add_argument("--title", default="pgverify imports", help="the drawing's title")
    args = parser.parse_args(argv)
    graph = build(args.root)
    if args.dot:
        args.dot.write_text(dot(graph))
    if args.svg:
        args.svg.write_text(svg(graph, args.title))
    print(summary(graph))
    return 1 if graph.upward() or graph.cycles() else 0


if __name__ == "__main__":
    sys.exit(main())
