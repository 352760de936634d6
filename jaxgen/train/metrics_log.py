"""Metric logging: JSON lines and TensorBoard event files in the workdir."""

from __future__ import annotations

import json
import os

import jax


class MetricWriter:
    """Appends ``{"step": s, **metrics}`` to workdir/metrics.jsonl and writes scalars to
    TensorBoard (workdir/tb). Only process 0 writes.

    A run resumed at ``start_step`` > 0 starts its event file with a purge marker
    (TensorBoard's ``SessionLog.START`` at that step): TensorBoard then hides what an
    earlier process logged at that step and after, i.e. the steps that are trained again,
    as ``loop.rewind_metrics`` drops them from metrics.jsonl.
    """

    def __init__(self, workdir: str, start_step: int = 0):
        self.active = jax.process_index() == 0
        self._tb = None
        if self.active:
            from tensorboardX import SummaryWriter  # imported lazily: only the writer needs it
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            # Event files are named by the second they are opened in: the suffix keeps a
            # quick restart from writing into its predecessor's file.
            self._tb = SummaryWriter(os.path.join(workdir, "tb"),
                                     purge_step=start_step if start_step > 0 else None,
                                     filename_suffix=f".s{start_step}.{os.getpid()}")

    def write(self, step: int, metrics: dict) -> None:
        if not self.active:
            return
        clean = {k: float(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": step, **clean}) + "\n")
        self._jsonl.flush()
        for k, v in clean.items():
            self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.active:
            self._jsonl.close()
            self._tb.close()
