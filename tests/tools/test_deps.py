"""deps and the import-graph algorithms: cycle, impact, depends, coupling, layers."""

from __future__ import annotations

from pathlib import Path

import pytest
from codetools import ToolError
from codetools.importgraph import (
    build_module_graph,
    coupling,
    distances,
    find_cycles,
    layers,
    resolve_scope,
    strongly_connected_components,
)


@pytest.fixture(scope="module")
def graph(toyshop: Path):
    return build_module_graph(toyshop)


def test_finds_exactly_the_cycle_a_b_cycle(graph) -> None:
    assert find_cycles(graph.imports) == [["toyshop.cycle_a", "toyshop.cycle_b", "toyshop.cycle_a"]]


def test_self_import_counts_as_a_cycle() -> None:
    assert find_cycles({"a": {"a"}, "b": {"a"}}) == [["a", "a"]]


def test_components_come_out_dependencies_first() -> None:
    order = strongly_connected_components({"top": {"mid"}, "mid": {"low"}, "low": set()})
    assert order == [["low"], ["mid"], ["top"]]


def test_impact_of_models_by_distance(graph) -> None:
    found = distances(graph.importers(), "toyshop.models")
    assert found == {"toyshop": 1, "toyshop.demo": 1, "toyshop.factory": 1, "toyshop.client": 2}


def test_find_module_accepts_unique_tails_only(graph) -> None:
    assert graph.find_module("factory") == "toyshop.factory"
    with pytest.raises(ToolError, match="no module named"):
        graph.find_module("nowhere")


def test_coupling_metrics_of_known_modules(graph) -> None:
    rows = {row.module: row for row in coupling(graph)}
    assert (rows["toyshop.models"].afferent, rows["toyshop.models"].efferent) == (3, 0)
    assert rows["toyshop.models"].instability == 0.0
    assert (rows["toyshop.client"].afferent, rows["toyshop.client"].efferent) == (1, 2)
    assert rows["toyshop.client"].instability == pytest.approx(2 / 3)
    assert rows["toyshop.shapes"].instability is None  # isolated


def test_layers_put_the_cycle_in_one_component_at_the_bottom(graph) -> None:
    stack = layers(graph.imports)
    assert ["toyshop.cycle_a", "toyshop.cycle_b"] in stack[0]
    assert stack[1] == [["toyshop.factory"]]
    assert stack[-1] == [["toyshop.demo"]]


def test_scope_of_a_subfolder_keeps_its_top_level_package(toyshop: Path) -> None:
    scope = resolve_scope(toyshop / "models.py")
    assert (scope.packages, scope.prefix, scope.search_root) == (
        ("toyshop",),
        "toyshop.models",
        toyshop.parent,
    )
    assert resolve_scope(toyshop.parent).packages == ("toyshop",)


def test_cli_every_subcommand(toyshop: Path, run_tool) -> None:
    path = f"--path={toyshop}"
    graph = run_tool("deps", path)
    assert graph.returncode == 0, graph.stderr
    assert "toyshop.client -> toyshop.factory, toyshop.logic" in graph.stdout
    assert "11 modules, 13 imports, 1 cycle(s)" in graph.stdout
    impact = run_tool("deps", "impact", "models", path)
    assert impact.stdout.splitlines()[:3] == [
        "impact of changing toyshop.models: 4 module(s) depend on it",
        "  directly: toyshop, toyshop.demo, toyshop.factory",
        "  2 hops away: toyshop.client",
    ]
    depends = run_tool("deps", "depends", "client", path)
    assert "  line 9: from toyshop.logic import old_name" in depends.stdout
    assert "  external: multiprocessing, socket" in depends.stdout
    circular = run_tool("deps", "circular", path)
    assert "  toyshop.cycle_a -> toyshop.cycle_b -> toyshop.cycle_a" in circular.stdout
    assert "    toyshop.cycle_b line 5: from toyshop import cycle_a" in circular.stdout
    coupling_out = run_tool("deps", "coupling", path)
    assert any(
        line.split() == ["toyshop.models", "3", "0", "0.00"] for line in coupling_out.stdout.splitlines()
    )
    layered = run_tool("deps", "layers", path)
    assert "  [cycle] toyshop.cycle_a, toyshop.cycle_b" in layered.stdout
    for result in (impact, depends, circular, coupling_out, layered):
        assert result.returncode == 0, result.stderr


def test_cli_ambiguous_or_missing_module_exits_2(toyshop: Path, run_tool) -> None:
    result = run_tool("deps", "impact", "nowhere", f"--path={toyshop}")
    assert result.returncode == 2 and "no module named 'nowhere'" in result.stderr
