"""schema: signatures, structure, api and types projections, and --output."""

from __future__ import annotations

from pathlib import Path

from codetools.schema import render
from codetools.sources import parse_tree


def test_signatures_read_like_a_stub(toyshop: Path) -> None:
    text = render("signatures", parse_tree(toyshop), toyshop)
    assert "class Dog(Animal):\n    def _noise(self) -> str: ..." in text
    assert "@dataclass(frozen=True)\nclass Point:\n    x: int\n    y: int = 0" in text
    assert "def make_pet(kind: str) -> Animal: ..." in text
    assert "return" not in text  # no implementation


def test_structure_lists_files_classes_methods_with_lines(toyshop: Path) -> None:
    lines = render("structure", parse_tree(toyshop), toyshop).splitlines()
    models = lines.index("  models.py")
    assert lines[models + 1] == "    class Animal  L11"
    assert "      .speak  L19" in lines
    assert lines[-1] == "11 files, 8 classes, 29 functions and methods"


def test_api_follows_reexports_to_signatures(toyshop: Path) -> None:
    text = render("api", parse_tree(toyshop), toyshop)
    assert "def make_pet(kind: str) -> Animal  (from toyshop.factory)" in text
    assert "class Point\n    x: int\n    y: int = 0" in text


def test_types_finds_the_dataclass_and_the_enum(toyshop: Path) -> None:
    text = render("types", parse_tree(toyshop), toyshop)
    assert "dataclass(frozen) Point  L49\n    x: int\n    y: int = 0" in text
    assert "enum Size(enum.Enum)  L54\n    SMALL = 1\n    LARGE = 2" in text
    assert text.endswith("2 type definition(s)")


def test_cli_output_writes_the_file(toyshop: Path, tmp_path: Path, run_tool) -> None:
    target = tmp_path / "SCHEMA.txt"
    result = run_tool("schema", f"--path={toyshop}", "--mode=signatures", f"--output={target}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote ") and "SCHEMA.txt" in result.stdout
    assert "def tangled(a: int, b: int, items: list[int]) -> int: ..." in target.read_text()


def test_cli_each_mode_runs(toyshop: Path, run_tool) -> None:
    for mode in ("signatures", "structure", "api", "types"):
        result = run_tool("schema", f"--path={toyshop}", f"--mode={mode}")
        assert result.returncode == 0, (mode, result.stderr)
        assert "toyshop" in result.stdout
