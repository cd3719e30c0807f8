"""No import cycles among tailor's modules (imports inside functions and under TYPE_CHECKING
count too: a cycle hidden in a function body is still a cycle)."""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _cycle_path(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One concrete cycle through the component's first module, as ``a -> b -> ... -> a``."""
    first = component[0]
    for nxt in sorted(graph.find_modules_directly_imported_by(first)):
        if nxt in component:
            chain = graph.find_shortest_chain(importer=nxt, imported=first)
            if chain:
                return " -> ".join([first, *chain])
    return ", ".join(component)


def test_finder_sees_a_cycle():
    """The check itself can fail: a two-module cycle is found and printed."""
    graph = grimp.ImportGraph()
    for m in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(m)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    cycles = _cycles(graph)
    assert cycles == [["pkg.a", "pkg.b"]]
    assert _cycle_path(graph, cycles[0]) == "pkg.a -> pkg.b -> pkg.a"


def test_no_import_cycle_in_tailor():
    graph = grimp.build_graph("tailor", cache_dir=None)
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_cycle_path(graph, c) for c in cycles)
