"""patterns: ipc, process, clientserver, structural and similar on the toyshop package."""

from __future__ import annotations

from pathlib import Path

import pytest
from codetools.patterns import detect
from codetools.similarity import similar_functions
from codetools.sources import parse_tree


@pytest.fixture(scope="module")
def findings(toyshop: Path) -> set[tuple[str, str, str, str]]:
    return {(f.category, f.label, f.module.name, f.detail) for f in detect(parse_tree(toyshop))}


def test_ipc_sockets_resolved_through_imports(findings) -> None:
    assert ("ipc", "socket", "toyshop.client", "socket.create_connection") in findings
    assert ("ipc", "socket", "toyshop.server", "socket.socket") in findings


def test_process_and_thread_resolved_through_aliases(findings) -> None:
    assert (
        "process",
        "process",
        "toyshop.client",
        "multiprocessing.Process",
    ) in findings  # `import ... as mp`
    assert ("process", "thread", "toyshop.server", "threading.Thread") in findings


def test_client_and_server_roles(findings) -> None:
    assert ("clientserver", "client class", "toyshop.client", "class ToyClient") in findings
    assert ("clientserver", "server class", "toyshop.server", "class ToyServer") in findings
    assert ("clientserver", "listening socket", "toyshop.server", "self._sock.listen") in findings


def test_structural_singletons_and_factory(findings) -> None:
    structural = {(label, detail) for category, label, _, detail in findings if category == "structural"}
    assert structural == {
        ("singleton", "class Registry caches _instance"),
        ("singleton", "def get_registry lazily creates global _registry"),
        ("factory", "def make_pet"),
    }


def test_route_decorators_and_registries(tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text(
        "import fastapi\n\nrouter = fastapi.APIRouter()\nHANDLERS = {'a': int, 'b': str}\n\n"
        "@router.post('/items')\ndef add_item() -> None: ...\n"
    )
    found = {(f.label, f.detail) for f in detect(parse_tree(tmp_path))}
    assert ("route", "POST /items -> add_item") in found
    assert ("server", "fastapi.APIRouter") in found
    assert ("registry", "HANDLERS: 2 entries") in found


def test_similar_pairs_are_the_two_lookalikes(toyshop: Path) -> None:
    pairs = {(a.qualname, b.qualname) for a, b, _ in similar_functions(parse_tree(toyshop))}
    assert pairs == {("rectangle_area", "triangle_area"), ("rectangle_report", "square_report")}


def test_cli_all_and_single_category(toyshop: Path, run_tool) -> None:
    everything = run_tool("patterns", f"--path={toyshop}")
    assert everything.returncode == 0, everything.stderr
    for header in ("== ipc ==", "== process ==", "== clientserver ==", "== structural ==", "== similar =="):
        assert header in everything.stdout
    assert "2 similar pair(s) at >= 85%" in everything.stdout
    ipc = run_tool("patterns", "ipc", f"--path={toyshop}")
    assert ipc.returncode == 0, ipc.stderr
    assert ipc.stdout.splitlines()[:2] == ["== ipc ==", "socket (2)"]
    assert "== process ==" not in ipc.stdout
