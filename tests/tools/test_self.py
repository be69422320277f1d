"""Every CLI on this project's own ``rvc`` package: exit code 0 and a sane report.

The package grows while these tests stay put, so they pin shapes of the
output, not counts; that dry runs write nothing is pinned on the toyshop
fixture. The subprocess timeout is a hang guard (each run takes
about a second on the 2-core box), not a timing assertion.
"""

from __future__ import annotations

import pytest

from tests.tools.conftest import REPO_ROOT

RVC = REPO_ROOT / "rvc"
PATH = f"--path={RVC}"

RUNS = [
    ("analyze", ["imports", PATH], "internal imports"),
    ("analyze", ["classes", PATH], "VoiceError"),
    ("analyze", ["calls", "VoiceError", PATH], "calls of VoiceError:"),
    ("analyze", ["exports", PATH], "modules define __all__"),
    ("analyze", ["dataflow", "VoiceError", PATH], "class rvc.errors.VoiceError"),
    ("schema", [PATH, "--mode=signatures"], "class VoiceError(Exception):"),
    ("schema", [PATH, "--mode=structure"], "errors.py"),
    ("schema", [PATH, "--mode=api"], "#"),
    ("schema", [PATH, "--mode=types"], "type definition(s)"),
    ("patterns", [PATH], "== similar =="),
    ("complexity", [PATH, "--top=5"], "average complexity"),
    ("complexity", [f"--file={RVC / 'errors.py'}"], "maintainability index"),
    ("complexity", ["--function=to_dict", PATH], "VoiceError.to_dict"),
    ("deps", [PATH], "cycle(s)"),
    ("deps", ["impact", "rvc.errors", PATH], "impact of changing rvc.errors"),
    ("deps", ["depends", "rvc.errors", PATH], "rvc.errors depends on"),
    ("deps", ["circular", PATH], "cycle"),
    ("deps", ["coupling", PATH], "rvc.errors"),
    ("deps", ["layers", PATH], "layer 0"),
    ("refactor", ["usages", "InvalidInput", PATH], "[definition]"),
    ("refactor", ["rename", "InvalidInput", "BadInput", PATH, "--dry-run"], "+class BadInput(VoiceError):"),
    ("refactor", ["duplicates", PATH], "duplicated block(s)"),
    ("refactor", ["unused", PATH], "unused item(s)"),
    ("refactor", ["move", "InvalidInput", "rvc.validation", PATH], "verdict:"),
    (
        "replace",
        [r"\bclass VoiceError\b", "class VoiceFailure", PATH, "--ext=py", "--dry-run"],
        "nothing written",
    ),
]


@pytest.mark.parametrize(
    ("tool", "args", "expected"), RUNS, ids=[f"{t}-{a[0] if a[0] != PATH else a[-1]}" for t, a, _ in RUNS]
)
def test_tool_runs_on_this_project(tool: str, args: list[str], expected: str, run_tool) -> None:
    result = run_tool(tool, *args)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
