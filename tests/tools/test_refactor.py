"""refactor: usages, rope rename across files, duplicates, vulture unused, move safety."""

from __future__ import annotations

from pathlib import Path

import pytest
from codetools import ToolError
from codetools.calls import find_usages
from codetools.movecheck import check_move
from codetools.refactoring import find_unused, rename
from codetools.similarity import duplicate_blocks
from codetools.sources import parse_tree

from tests.tools.toyshop import line_of


def test_usages_classify_each_line(toyshop: Path) -> None:
    usages = {(site.module.name, site.kind) for site in find_usages(parse_tree(toyshop), "make_pet")}
    assert usages == {
        ("toyshop", "import"),
        ("toyshop", "export"),
        ("toyshop.client", "import"),
        ("toyshop.client", "call"),
        ("toyshop.client", "reference"),  # mp.Process(target=make_pet)
        ("toyshop.factory", "definition"),
    }


def test_rename_across_files_rewrites_definition_import_and_call(toyshop_copy: Path) -> None:
    changes = rename(toyshop_copy, "old_name", "fresh_name", apply=True)
    assert sorted(change.path.name for change in changes) == ["client.py", "logic.py"]
    client = (toyshop_copy / "client.py").read_text()
    assert "from toyshop.logic import fresh_name" in client
    assert "fresh_name(8000)" in client and "old_name" not in client
    assert "def fresh_name(value: int) -> int:" in (toyshop_copy / "logic.py").read_text()
    assert not (toyshop_copy.parent / ".ropeproject").exists()


def test_rename_dry_run_writes_nothing(toyshop_copy: Path) -> None:
    before = {path.name: path.read_text() for path in toyshop_copy.glob("*.py")}
    changes = rename(toyshop_copy, "old_name", "fresh_name", apply=False)
    assert len(changes) == 2
    assert "-from toyshop.logic import old_name\n+from toyshop.logic import fresh_name" in changes[0].diff()
    assert {path.name: path.read_text() for path in toyshop_copy.glob("*.py")} == before


def test_renaming_a_method_renames_its_overrides(toyshop_copy: Path) -> None:
    rename(toyshop_copy, "Animal._noise", "make_noise", apply=True)
    models = (toyshop_copy / "models.py").read_text()
    assert "._noise" not in models and "def _noise" not in models
    assert models.count("def make_noise(self) -> str:") == 2 and "noise = self.make_noise()" in models


def test_rename_refuses_bad_identifier_and_unknown_name(toyshop: Path) -> None:
    with pytest.raises(ToolError, match="not a valid Python identifier"):
        rename(toyshop, "old_name", "not-valid", apply=False)
    with pytest.raises(ToolError, match="no definition of 'ghost'"):
        rename(toyshop, "ghost", "spirit", apply=False)


def test_duplicates_find_the_pasted_block(toyshop: Path) -> None:
    blocks = duplicate_blocks(parse_tree(toyshop))
    assert len(blocks) == 1
    first, second = blocks[0].places
    start = line_of(toyshop, "shapes.py", "count = len(items)")
    assert (first[1], second[0].name, blocks[0].length) == (start, "toyshop.shapes", 8)


def test_unused_is_exactly_never_called(toyshop: Path) -> None:
    items = find_unused(toyshop)
    assert [(item.kind, item.name) for item in items] == [("function", "never_called")]
    assert items[0].location.endswith(f"factory.py:{line_of(toyshop, 'factory.py', 'def never_called')}")


def test_move_into_an_importer_is_unsafe_because_of_a_cycle(toyshop: Path) -> None:
    plan = check_move(toyshop, "Dog", "toyshop.factory")
    assert plan.new_cycles == [["toyshop.factory", "toyshop.models", "toyshop.factory"]]
    assert plan.source_uses == [line_of(toyshop, "models.py", "class Puppy(Dog)")]
    assert plan.in_source_all
    assert plan.verdict.startswith("UNSAFE")


def test_move_of_make_pet_to_models_is_safe_with_two_importer_edits(toyshop: Path) -> None:
    plan = check_move(toyshop, "make_pet", "toyshop.models")
    assert plan.already_there == ["Animal", "Dog", "Puppy"]
    assert sorted(module.name for module, _, _ in plan.importers) == ["toyshop", "toyshop.client"]
    assert not plan.new_cycles and plan.verdict == "SAFE after 2 edit(s)"


def test_move_detects_a_name_clash(tmp_path: Path) -> None:
    package = tmp_path / "clash"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def tool() -> None: ...\n")
    (package / "b.py").write_text("from os import path as tool\n")
    plan = check_move(package, "tool", "clash.b")
    assert plan.verdict == "UNSAFE: clash.b already defines 'tool' (line 1)"


def test_cli_subcommands(toyshop_copy: Path, run_tool) -> None:
    path = f"--path={toyshop_copy}"
    usages = run_tool("refactor", "usages", "Animal", path)
    assert usages.returncode == 0, usages.stderr
    assert usages.stdout.startswith("usages of Animal: 10 in 4 file(s)")
    preview = run_tool("refactor", "rename", "old_name", "fresh_name", path, "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "+from toyshop.logic import fresh_name" in preview.stdout
    assert preview.stdout.rstrip().endswith("(dry run) 2 file(s) would change")
    assert "old_name" in (toyshop_copy / "client.py").read_text()
    applied = run_tool("refactor", "rename", "old_name", "fresh_name", path)
    assert applied.returncode == 0 and "renamed old_name -> fresh_name in 2 file(s)" in applied.stdout
    assert "fresh_name(8000)" in (toyshop_copy / "client.py").read_text()
    duplicates = run_tool("refactor", "duplicates", path)
    assert "1 duplicated block(s) of >= 6 code lines" in duplicates.stdout
    unused = run_tool("refactor", "unused", path)
    assert unused.stdout.splitlines()[0].endswith("unused function 'never_called' (60% confidence)")
    move = run_tool("refactor", "move", "Dog", "toyshop.factory", path)
    assert move.stdout.rstrip().endswith("verdict: UNSAFE: the move creates 1 import cycle(s)")
    for result in (duplicates, unused, move):
        assert result.returncode == 0, result.stderr


def test_cli_wrong_arity_is_a_usage_error(toyshop: Path, run_tool) -> None:
    result = run_tool("refactor", "rename", "only_one", f"--path={toyshop}")
    assert result.returncode == 2 and "takes 2 name argument(s)" in result.stderr
