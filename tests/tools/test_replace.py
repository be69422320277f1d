"""replace: $-style groups, dry-run diffs, and folders/files it must never touch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from codetools.textreplace import compile_replacement, plan_replacements


def expand(pattern: str, replacement: str, text: str) -> str:
    regex = re.compile(pattern)
    return regex.sub(compile_replacement(regex, replacement), text)


def test_dollar_groups_expand_like_javascript() -> None:
    assert expand(r"console\.log\((.*)\)", "logger.info($1)", "console.log(a, b)") == "logger.info(a, b)"
    assert expand(r"(\w+)=(\w+)", "$2=$1 ${1} $& $$1", "x=y") == "y=x x x=y $1"
    assert expand(r"(?P<key>\w+):", "<$<key>>", "name:") == "<name>"
    assert expand(r"(a)", r"\n$1\1", "a") == r"\na\1"  # backslashes stay literal


def test_two_digit_group_falls_back_to_one_digit_and_literal() -> None:
    assert expand(r"(a)(b)", "$10", "ab") == "a0"


def test_unknown_group_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"group \$3"):
        compile_replacement(re.compile("(a)(b)"), "$3")


def test_plan_skips_git_venv_and_binary_files(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("from infer.x import y\n")
    (tmp_path / "notes.md").write_text("from infer.x\n")
    for protected in (".git", ".venv", "env"):
        (tmp_path / protected).mkdir()
        (tmp_path / protected / "b.py").write_text("from infer.x\n")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "blob.py").write_bytes(b"from infer.\x00x")
    changes = plan_replacements(r"from infer\.", "from rvc.infer.", tmp_path, ["py"])
    assert [change.path.relative_to(tmp_path).as_posix() for change in changes] == ["src/a.py"]
    assert changes[0].new_text == "from rvc.infer.x import y\n"


def test_cli_dry_run_prints_diff_and_writes_nothing(toyshop_copy: Path, run_tool) -> None:
    before = (toyshop_copy / "client.py").read_text()
    result = run_tool(
        "replace", r"make_pet\((\"\w+\")\)", "make_pet(kind=$1)", f"--path={toyshop_copy}", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert '-        pet = make_pet("dog")' in result.stdout
    assert '+        pet = make_pet(kind="dog")' in result.stdout
    assert "2 replacement(s) in 1 file(s)" in result.stdout
    assert (toyshop_copy / "client.py").read_text() == before


def test_cli_writes_only_matching_extensions(toyshop_copy: Path, run_tool) -> None:
    (toyshop_copy / "README.txt").write_text("toyshop make_pet\n")
    result = run_tool("replace", "make_pet", "create_pet", f"--path={toyshop_copy}", "--ext=txt")
    assert result.returncode == 0, result.stderr
    assert (toyshop_copy / "README.txt").read_text() == "toyshop create_pet\n"
    assert "make_pet" in (toyshop_copy / "client.py").read_text()
    assert result.stdout.strip().endswith("1 replacement(s) in 1 file(s)")


def test_cli_reports_bad_group_with_exit_code_2(toyshop_copy: Path, run_tool) -> None:
    result = run_tool("replace", "(a)", "$2", f"--path={toyshop_copy}")
    assert result.returncode == 2
    assert "error: replacement refers to group $2" in result.stderr
