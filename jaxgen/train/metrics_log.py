"""Metric logging: JSON lines and TensorBoard event files in the workdir."""

from __future__ import annotations

import json
import os

import jax


class MetricWriter:
    """Appends ``{"step": s, **metrics}`` to workdir/metrics.jsonl and writes scalars to
    TensorBoard (workdir/tb). Only process 0 writes."""

    def __init__(self, workdir: str):
        self.active = jax.process_index() == 0
        self._tb = None
        if self.active:
            from tensorboardX import SummaryWriter  # imported lazily: only the writer needs it
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self._tb = SummaryWriter(os.path.join(workdir, "tb"))

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
