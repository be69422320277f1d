"""Test-only fault injection: make a worker's Nth job or stream block raise a CUDA error without a GPU.

The CUDA-fault paths of a worker (free the cache and answer 503 after an
out-of-memory; fail the job and exit after a sticky error, so the supervisor
replaces the worker) only run on a GPU. Tests reach them in real worker
processes, without monkeypatching inside the child, through one variable
read once when a worker starts::

    RVC_TESTING=1 RVC_FAULT_INJECTION=oom-on-job-2,sticky-on-job-4

``<kind>-on-job-<n>``: the worker's nth conversion job (counted from 1 in
that process) raises the error torch raises for that kind, at the point
where the converter would (kinds: ``oom``, ``sticky``);
``<kind>-on-block-<n>``: the same for its nth stream block (streams count
apart from jobs). A replacement worker starts counting again. RVC_FAULT_INJECTION without RVC_TESTING=1
stops the worker at start with a ConfigError: a stray variable in a
production environment must not fail jobs quietly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rvc.errors import ConfigError

__all__ = ["FAULT_VARIABLE", "TESTING_VARIABLE", "FaultKind", "FaultPlan", "FaultTarget"]

FAULT_VARIABLE = "RVC_FAULT_INJECTION"
TESTING_VARIABLE = "RVC_TESTING"
FaultKind = Literal["oom", "sticky"]
FaultTarget = Literal["job", "block"]
_RULE = re.compile(r"^(oom|sticky)-on-(job|block)-([1-9][0-9]*)$")


@dataclass(frozen=True)
class FaultPlan:
    """Which of a worker's jobs and stream blocks (each 1-based, per process) fail, and how."""

    faults: tuple[tuple[FaultTarget, int, FaultKind], ...]

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        faults: list[tuple[FaultTarget, int, FaultKind]] = []
        for rule in (part.strip() for part in spec.split(",")):
            match = _RULE.match(rule)
            if match is None:
                raise ConfigError(
                    f"{FAULT_VARIABLE}={spec!r}: each rule must be <oom|sticky>-on-<job|block>-N (N >= 1), "
                    f"got {rule!r}", field=FAULT_VARIABLE,
                )
            kind: FaultKind = "oom" if match.group(1) == "oom" else "sticky"
            target: FaultTarget = "job" if match.group(2) == "job" else "block"
            faults.append((target, int(match.group(3)), kind))
        return cls(tuple(faults))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> FaultPlan | None:
        """The plan the environment asks for; None when it asks for none. ConfigError when it asks
        without ``RVC_TESTING=1`` or in a form this does not know.
        """
        spec = environ.get(FAULT_VARIABLE, "").strip()
        if not spec:
            return None
        if environ.get(TESTING_VARIABLE) != "1":
            raise ConfigError(
                f"{FAULT_VARIABLE} is a test-only setting and is refused unless {TESTING_VARIABLE}=1 is also "
                f"set; remove {FAULT_VARIABLE} from this environment", field=FAULT_VARIABLE,
            )
        return cls.parse(spec)

    def fault_for(self, number: int, target: FaultTarget = "job") -> FaultKind | None:
        """The fault of the ``number``th job (or stream block), None when it runs as usual."""
        for on, at, kind in self.faults:
            if on == target and at == number:
                return kind
        return None
