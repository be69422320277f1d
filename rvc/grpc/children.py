"""Child processes that cannot outlive the process that started them, and their process groups.

A supervisor killed with SIGKILL (its own supervisor's timeout, the OOM
killer) runs no cleanup, so a child it started must notice by itself.
Linux's parent-death signal does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
in the child, between fork and exec, makes the kernel kill the child when
its parent goes. The parent is the *thread* that forked, not the process:
a child started from a short-lived thread dies with that thread. So start
such children from the main thread or from a thread that outlives them.

tritonserver's python-backend stubs are not our children but the server's;
they watch their parent and exit about a second after it is gone and
reaped (measured on the nvidia-pytriton build: a zombie server keeps them
alive), so a server killed this way takes its stubs with it. They share the
server's process group, which is how a live supervisor reaches them at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from pathlib import Path

__all__ = ["die_with_parent", "group_members", "kill_group"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` that arms the parent-death signal in the child before exec.

    libc and the parent's pid are looked up here, in the parent, so the child between fork and exec
    does as little as possible: one system call, and a check that the parent did not already die
    before the signal was armed (then the child exits instead of running as an orphan).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    signal_number = int(sig)

    def arm() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal_number, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:
            os._exit(126)

    return arm


def kill_group(group_id: int) -> None:
    """SIGKILL every process in the group; a group already gone is not an error."""
    try:
        os.killpg(group_id, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_members(group_id: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``group_id``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == group_id and fields[0] != "Z":
            members.append(int(entry.name))
    return members
