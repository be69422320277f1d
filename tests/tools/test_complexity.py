"""complexity: radon scores, top/threshold/file/function views."""

from __future__ import annotations

from pathlib import Path

from codetools.complexity import decision_breakdown, measure
from codetools.sources import parse_tree


def test_tangled_is_the_one_complex_function(toyshop: Path) -> None:
    rows = sorted(measure(parse_tree(toyshop)), key=lambda row: -row.complexity)
    assert (rows[0].qualname, rows[0].complexity, rows[0].rank) == ("tangled", 11, "C")
    assert all(row.complexity <= 5 for row in rows[1:])


def test_methods_are_counted_once_with_class_prefix(toyshop: Path) -> None:
    names = [row.qualname for row in measure(parse_tree(toyshop))]
    assert names.count("Animal.speak") == 1
    assert "speak" not in names


def test_breakdown_counts_decisions_and_nesting(toyshop: Path) -> None:
    module = next(m for m in parse_tree(toyshop) if m.name == "toyshop.logic")
    tangled = next(node for node in module.tree.body if getattr(node, "name", "") == "tangled")
    counts = decision_breakdown(tangled)
    assert counts["if"] == 4 and counts["loops"] == 2 and counts["except"] == 1
    assert counts["boolean ops"] == 2 and counts["ternaries"] == 1 and counts["returns"] == 2


def test_cli_top_threshold_file_function(toyshop: Path, run_tool) -> None:
    path = f"--path={toyshop}"
    top = run_tool("complexity", path, "--top=1")
    assert top.returncode == 0, top.stderr
    lines = top.stdout.splitlines()
    assert (
        lines[1].split()[:3] == ["11", "C", "tangled"]
        and len([line for line in lines if "toyshop/" in line]) == 1
    )
    above = run_tool("complexity", path, "--threshold=11")
    assert above.stdout.startswith("1 function(s) with complexity >= 11")
    one_file = run_tool("complexity", f"--file={toyshop / 'logic.py'}")
    assert "old_name" in one_file.stdout and "maintainability index" in one_file.stdout
    detail = run_tool("complexity", "--function=tangled", path)
    assert "  complexity 11 (rank C)" in detail.stdout
    assert "hint: above 10" in detail.stdout
    for result in (above, one_file, detail):
        assert result.returncode == 0, result.stderr


def test_cli_unknown_function_exits_2(toyshop: Path, run_tool) -> None:
    result = run_tool("complexity", "--function=nope", f"--path={toyshop}")
    assert result.returncode == 2 and "no function named 'nope'" in result.stderr
