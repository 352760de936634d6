"""Benchmark: softmax attention forward and forward+backward on XLA, jax.nn vs jaxgen.

"jax.nn" is ``jax.nn.dot_product_attention`` differentiated by XLA's autodiff;
"jaxgen" is ``jaxgen.nets.attention.dot_product_attention`` (chunked, with a
FlashAttention-style custom VJP). Shapes are those of the DDPM UNet's
attention layers (8 heads of dim 8; 256 tokens at 16x16, 64 at 8x8) at the
training batch and the sampler batches. Forward+backward is the VJP applied to
a fixed cotangent, returning dq, dk, dv.

  python experiments/bench_attention.py [--repeats 20]

The two implementations are interleaved within each repeat so that drift in
machine load hits both alike; figures are medians. Writes JSON to
experiments/results/attention_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.bench import interleaved_median_ms, machine_info  # noqa: E402
from jaxgen.core import xla_options  # noqa: E402
from jaxgen.nets.attention import dot_product_attention  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# (batch, tokens): UNet training batch at 16x16 and 8x8, sampler batches 1 and 16 at 16x16.
SHAPES = [(32, 256), (32, 64), (16, 256), (1, 256)]
HEADS, HEAD_DIM = 8, 8


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(RESULTS, "attention_bench.json"))
    args = ap.parse_args(argv)
    impls = {"jax.nn": jax.nn.dot_product_attention, "jaxgen": dot_product_attention}
    rows = []
    print(f"{'B':>3s} {'T':>4s} {'pass':>8s} {'jax.nn ms':>10s} {'jaxgen ms':>10s} {'speedup':>8s}")
    for b, t in SHAPES:
        q, k, v, g = (jax.random.normal(key, (b, t, HEADS, HEAD_DIM))
                      for key in jax.random.split(jax.random.key(0), 4))
        fns = {}
        for name, fn in impls.items():
            fns[(name, "fwd")] = xla_options.jit(fn)
            fns[(name, "fwd+bwd")] = xla_options.jit(
                lambda q, k, v, fn=fn: jax.vjp(fn, q, k, v)[1](g))
        medians = interleaved_median_ms(fns, q, k, v, repeats=args.repeats)
        for phase in ("fwd", "fwd+bwd"):
            ref, ours = medians[("jax.nn", phase)], medians[("jaxgen", phase)]
            rows.append({"batch": b, "tokens": t, "pass": phase, "jax_nn_ms": ref,
                         "jaxgen_ms": ours, "speedup": ref / ours})
            print(f"{b:3d} {t:4d} {phase:>8s} {ref:10.2f} {ours:10.2f} {ref / ours:8.2f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "heads": HEADS, "head_dim": HEAD_DIM, "repeats": args.repeats,
                   "machine": machine_info(),
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
