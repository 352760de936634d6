"""Fault injection, to test that training survives being killed, preempted or poisoned.

Faults are armed only by the environment variable ``JAXGEN_FAULTS``, so a test can arm
them in a child process it starts while normal runs never see them. The value is a
comma-separated list of ``KIND=STEP``, where STEP counts optimizer updates as
``metrics.jsonl`` and the checkpoint directories do (update N leaves ``state.step == N``):

  kill_after_step=N    SIGKILL once update N has been dispatched, before step N is saved.
  kill_in_save=N       SIGKILL inside the asynchronous save of step N, after its arrays
                       are written and before orbax commits the checkpoint (the rename of
                       its temporary directory).
  nan_at_step=N        update N trains on a batch filled with NaN, so its loss and
                       gradients are not finite.
  sigint_after_step=N  the process sends itself SIGINT after update N (likewise sigterm).
  pause_after_step=N   after update N, wait (at most PAUSE_LIMIT_S) until a stop signal
                       arrives: a backstop for tests that signal or kill the run from
                       outside at an arbitrary moment, so that it cannot finish first.

Example:
  JAXGEN_FAULTS=kill_in_save=4 python -m jaxgen.main --config=configs/rf_toy.py:smoke ...
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

ENV = "JAXGEN_FAULTS"
KINDS = ("kill_after_step", "kill_in_save", "nan_at_step", "sigint_after_step",
         "sigterm_after_step", "pause_after_step")
# A paused run whose test died goes on by itself after this long.
PAUSE_LIMIT_S = 300.0


def parse(spec: str) -> dict[str, int]:
    """``'kill_after_step=3,nan_at_step=5'`` -> ``{'kill_after_step': 3, 'nan_at_step': 5}``."""
    plan = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, step = item.partition("=")
        kind, step = kind.strip(), step.strip()
        if kind not in KINDS or not step.isdigit():
            raise ValueError(f"{ENV}={spec!r}: each entry must be KIND=STEP with KIND one of "
                             f"{', '.join(KINDS)} and STEP a non-negative integer")
        plan[kind] = int(step)
    return plan


def _kill() -> None:
    # SIGKILL cannot be caught: no finally block, atexit hook or orbax thread runs after it,
    # exactly as when a machine is reclaimed.
    os.kill(os.getpid(), signal.SIGKILL)


class Faults:
    """The faults armed for this process (none unless ``JAXGEN_FAULTS`` is set)."""

    def __init__(self, plan: dict[str, int] | None = None):
        self.plan = dict(plan or {})

    @classmethod
    def from_env(cls) -> "Faults":
        return cls(parse(os.environ.get(ENV, "")))

    def __bool__(self) -> bool:
        return bool(self.plan)

    def poison(self, batch: dict, step: int) -> dict:
        """The host batch of update ``step``, with its examples replaced by NaN if armed."""
        if self.plan.get("nan_at_step") != step:
            return batch
        import numpy as np
        return {**batch, "x": np.full_like(batch["x"], np.nan)}

    def after_step(self, step: int, stopping: Callable[[], bool]) -> None:
        """Called once update ``step`` has been dispatched, before it is logged or saved.

        Args:
          stopping: whether a stop signal has arrived (ends a pause).
        """
        if self.plan.get("kill_after_step") == step:
            _kill()
        if self.plan.get("sigint_after_step") == step:
            signal.raise_signal(signal.SIGINT)
        if self.plan.get("sigterm_after_step") == step:
            signal.raise_signal(signal.SIGTERM)
        if self.plan.get("pause_after_step") == step:
            deadline = time.monotonic() + PAUSE_LIMIT_S
            while not stopping() and time.monotonic() < deadline:
                time.sleep(0.01)

    def temporary_path_class(self):
        """An orbax ``TemporaryPath`` class that kills the process just before committing
        the checkpoint of step ``kill_in_save``; None when that fault is not armed."""
        if "kill_in_save" not in self.plan:
            return None
        from orbax.checkpoint import path as ocp_path

        target = str(self.plan["kill_in_save"])

        class KillBeforeCommit(ocp_path.atomicity.AtomicRenameTemporaryPath):
            async def finalize(self, *args, **kwargs):
                # The step directory is named by its step; items ('state', ...) are not.
                if self.get_final().name == target:
                    _kill()
                return await super().finalize(*args, **kwargs)

        return KillBeforeCommit
