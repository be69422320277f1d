"""analyze: imports, classes, calls, exports and dataflow on the toyshop package."""

from __future__ import annotations

from pathlib import Path

from codetools.calls import find_call_sites
from codetools.classes import collect_classes, dataflow, hierarchy
from codetools.modulereport import format_exports
from codetools.sources import parse_tree

from tests.tools.toyshop import line_of


def test_call_sites_of_make_pet_are_the_two_known_calls(toyshop: Path) -> None:
    sites = find_call_sites(parse_tree(toyshop), "make_pet")
    assert [(site.module.name, site.lineno, site.scope) for site in sites] == [
        ("toyshop.client", line_of(toyshop, "client.py", 'make_pet("dog")'), "ToyClient.adopt"),
        ("toyshop.client", line_of(toyshop, "client.py", 'make_pet("puppy").speak()'), "second_pet"),
    ]


def test_dotted_call_query_matches_attribute_calls(toyshop: Path) -> None:
    sites = find_call_sites(parse_tree(toyshop), "cycle_b.pong")
    assert [(site.module.name, site.scope) for site in sites] == [("toyshop.cycle_a", "ping")]


def test_hierarchy_nests_puppy_under_dog_under_animal(toyshop: Path) -> None:
    lines = hierarchy(collect_classes(parse_tree(toyshop)))
    names = [line.split()[0] for line in lines]
    animal = names.index("Animal")
    assert lines[animal + 1].startswith("  Dog ") and lines[animal + 2].startswith("    Puppy ")


def test_methods_split_public_private_magic(toyshop: Path) -> None:
    animal = next(info for info in collect_classes(parse_tree(toyshop)) if info.name == "Animal")
    assert animal.methods_by_kind() == {
        "public": ["speak", "rename", "describe"],
        "private": ["_noise"],
        "magic": ["__init__", "__repr__"],
    }


def test_dataflow_knows_which_methods_mutate_which_attributes(toyshop: Path) -> None:
    classes = collect_classes(parse_tree(toyshop))
    puppy = next(info for info in classes if info.name == "Puppy")
    flows = dataflow(puppy, classes)  # everything is inherited from Animal
    assert sorted(flows) == ["calls", "name", "sounds"]
    assert flows["calls"].written_by == {"Animal.speak"}
    assert flows["sounds"].written_by == {"Animal.speak"}  # through .append
    assert flows["name"].written_by == {"Animal.rename"}
    assert flows["name"].initialised_in == {"Animal.__init__"}
    assert flows["name"].read_by == {"Animal.describe", "Animal.__repr__"}


def test_exports_resolve_reexports_and_list_modules_without_all(toyshop: Path) -> None:
    report = format_exports(parse_tree(toyshop))
    assert "  make_pet  from toyshop.factory" in report
    assert "  Point   class" in report
    assert "3 modules define __all__; 8 do not" in report


def test_exports_flags_names_never_bound(tmp_path: Path) -> None:
    package = tmp_path / "ghost"
    package.mkdir()
    (package / "__init__.py").write_text('__all__ = ["real", "phantom"]\n\ndef real() -> None: ...\n')
    report = format_exports(parse_tree(package))
    assert "phantom  MISSING" in report


def test_cli_imports_shows_cycle_edges_and_externals(toyshop: Path, run_tool) -> None:
    result = run_tool("analyze", "imports", f"--path={toyshop}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    cycle_a = lines.index("toyshop.cycle_a")
    assert lines[cycle_a + 1] == "  -> toyshop.cycle_b  (line 5)"
    assert "  external: multiprocessing, socket" in lines
    assert "11 modules, 13 internal imports" in lines


def test_cli_classes_calls_exports_dataflow(toyshop: Path, run_tool) -> None:
    classes = run_tool("analyze", "classes", f"--path={toyshop}")
    assert classes.returncode == 0, classes.stderr
    assert "    private  _noise" in classes.stdout
    calls = run_tool("analyze", "calls", "make_pet", f"--path={toyshop}")
    assert calls.returncode == 0, calls.stderr
    assert calls.stdout.startswith("calls of make_pet: 2 in 1 file(s)")
    exports = run_tool("analyze", "exports", f"--path={toyshop}")
    assert exports.returncode == 0 and "toyshop.shapes" in exports.stdout
    flow = run_tool("analyze", "dataflow", "Animal", f"--path={toyshop}")
    assert flow.returncode == 0, flow.stderr
    assert "methods that mutate state: speak (calls, sounds); rename (name)" in flow.stdout


def test_cli_unknown_class_exits_2(toyshop: Path, run_tool) -> None:
    result = run_tool("analyze", "dataflow", "Nope", f"--path={toyshop}")
    assert result.returncode == 2
    assert "no class named 'Nope'" in result.stderr
