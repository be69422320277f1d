"""The environment tritonserver and its stubs get: this venv first, never a system library folder first.

Computed for two machines: this one (a pyenv Python whose libdir the loader does not know) and
NVIDIA's image (the apt Python 3.11, whose libdir is ``/usr/lib/x86_64-linux-gnu``, where the image
keeps its own cuDNN and NCCL). The real server with the computed environment is started by
``test_launcher.py`` (its echo model imports transformers, which fails with the wrong libpython).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import pytest

from rvc.grpc.launcher import (
    TritonInstallation,
    library_search_path,
    locate_tritonserver,
    server_environment,
    system_library_dirs,
)

IMAGE_LIBDIR = "/usr/lib/x86_64-linux-gnu"
PYENV_LIBDIR = "/root/.pyenv/versions/3.11.7/lib"
IMAGE_INHERITED = "/opt/venv/lib/python3.11/site-packages/nvidia_pytriton.libs:/usr/local/nvidia/lib64"


@pytest.fixture
def nvidia_image_loader(tmp_path: Path) -> frozenset[Path]:
    """The loader configuration of NVIDIA's image (Ubuntu: ld.so.conf including ld.so.conf.d/*.conf)."""
    conf_d = tmp_path / "ld.so.conf.d"
    conf_d.mkdir()
    (tmp_path / "ld.so.conf").write_text("include /nonexistent/*.conf\ninclude ld.so.conf.d/*.conf\n")
    (conf_d / "x86_64-linux-gnu.conf").write_text(
        "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n"
    )
    (conf_d / "000_cuda.conf").write_text("/usr/local/cuda/lib64 # cuDNN may live here too\n")
    return system_library_dirs(tmp_path / "ld.so.conf", multiarch="x86_64-linux-gnu")


def installation(*library_dirs: str) -> TritonInstallation:
    return TritonInstallation(
        binary=Path("/opt/tritonserver/bin/tritonserver"), backend_dir=None, stub=None,
        library_dirs=tuple(Path(folder) for folder in library_dirs), bundled=False,
    )


def test_loader_folders_include_defaults_multiarch_and_ld_so_conf(nvidia_image_loader: frozenset[Path]) -> None:
    for folder in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/cuda/lib64"):
        assert Path(os.path.realpath(folder)) in nvidia_image_loader, folder
    assert Path(PYENV_LIBDIR) not in nvidia_image_loader


def test_image_python_libdir_is_never_prepended(monkeypatch: pytest.MonkeyPatch,
                                                nvidia_image_loader: frozenset[Path]) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", IMAGE_INHERITED)
    env = server_environment(installation(), 1, {}, python_libdir=IMAGE_LIBDIR, system_dirs=nvidia_image_loader)
    assert env["LD_LIBRARY_PATH"] == IMAGE_INHERITED  # unchanged: nothing ahead of torch's RUNPATH
    parts = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert IMAGE_LIBDIR not in parts and "/lib/x86_64-linux-gnu" not in parts


def test_image_python_libdir_given_through_the_lib_symlink_is_not_prepended(
    nvidia_image_loader: frozenset[Path],
) -> None:
    assert library_search_path("/lib/x86_64-linux-gnu", (), None, nvidia_image_loader) == ""


def test_pyenv_libdir_goes_first_then_installation_then_inherited(monkeypatch: pytest.MonkeyPatch,
                                                                  nvidia_image_loader: frozenset[Path]) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/somewhere/else")
    monkeypatch.setenv("PYTHONPATH", "/should/be/dropped")
    bundled = installation("/venv/lib/python3.11/site-packages/nvidia_pytriton.libs")
    env = server_environment(bundled, 2, {"EXTRA": "1"}, python_libdir=PYENV_LIBDIR, system_dirs=nvidia_image_loader)
    assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [
        PYENV_LIBDIR, "/venv/lib/python3.11/site-packages/nvidia_pytriton.libs", "/somewhere/else",
    ]
    assert "PYTHONPATH" not in env
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["OMP_NUM_THREADS"] == "2" and env["EXTRA"] == "1"


def test_empty_search_path_is_removed_not_left_empty(monkeypatch: pytest.MonkeyPatch,
                                                     nvidia_image_loader: frozenset[Path]) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    env = server_environment(installation(), 1, {}, python_libdir=IMAGE_LIBDIR, system_dirs=nvidia_image_loader)
    assert "LD_LIBRARY_PATH" not in env  # an empty entry would make the loader search the cwd


def test_this_machine_prepends_its_pyenv_libdir() -> None:
    """Here the interpreter is a pyenv build: its libdir must come first, or the stub links Debian's 3.11.2."""
    libdir = sysconfig.get_config_var("LIBDIR")
    env = server_environment(locate_tritonserver(), 1, {})
    first = env["LD_LIBRARY_PATH"].split(os.pathsep)[0]
    if Path(os.path.realpath(libdir)) in system_library_dirs():
        assert first != libdir
    else:
        assert first == libdir
