"""Benchmark: GroupNorm + SiLU on XLA:CPU, flax.linen.GroupNorm vs jaxgen.nets.GroupNorm.

Both compute the same function with the same parameters; they differ in how the
statistics are reduced (see ``jaxgen/nets/norm.py``). Shapes are the DDPM UNet's
activations at the sampler batch (16) and the training batch (32). "fwd+bwd" is the
VJP of the norm followed by SiLU applied to a fixed cotangent (plain autodiff for both).

  python experiments/bench_norm.py [--repeats 30]

The implementations take turns within every repeat; figures are medians. Writes
experiments/results/norm_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import flax.linen as nn
import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.bench import interleaved_median_ms, machine_info  # noqa: E402
from jaxgen.core import xla_options  # noqa: E402
from jaxgen.nets import GroupNorm  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# (H, W, C) of the matched UNet's normalised activations; 8 groups.
SHAPES = [(32, 32, 32), (32, 32, 64), (16, 16, 64), (16, 16, 128), (8, 8, 128)]
GROUPS = 8


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batches", default="16,32")
    ap.add_argument("--out", default=os.path.join(RESULTS, "norm_bench.json"))
    args = ap.parse_args(argv)
    impls = {"flax": nn.GroupNorm(GROUPS, epsilon=1e-5), "jaxgen": GroupNorm(GROUPS, epsilon=1e-5)}
    rows = []
    print(f"{'shape':>18s} {'pass':>8s} {'flax ms':>9s} {'jaxgen ms':>10s} {'speedup':>8s}")
    for b in (int(s) for s in args.batches.split(",")):
        for h, w, c in SHAPES:
            kx, kg = jax.random.split(jax.random.key(0))
            x = 2.0 * jax.random.normal(kx, (b, h, w, c)) + 0.5
            cot = jax.random.normal(kg, x.shape)
            params = impls["flax"].init(jax.random.key(1), x)
            fns = {}
            for name, mod in impls.items():
                f = lambda p, x, mod=mod: nn.silu(mod.apply(p, x))
                fns[(name, "fwd")] = xla_options.jit(f)
                fns[(name, "fwd+bwd")] = xla_options.jit(
                    lambda p, x, f=f: jax.vjp(f, p, x)[1](cot))
            medians = interleaved_median_ms(fns, params, x, repeats=args.repeats)
            for phase in ("fwd", "fwd+bwd"):
                ref, ours = medians[("flax", phase)], medians[("jaxgen", phase)]
                rows.append({"shape": [b, h, w, c], "pass": phase, "flax_ms": ref,
                             "jaxgen_ms": ours, "speedup": ref / ours})
                print(f"{str((b, h, w, c)):>18s} {phase:>8s} {ref:9.3f} {ours:10.3f} "
                      f"{ref / ours:8.2f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "groups": GROUPS, "repeats": args.repeats,
                   "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
                  f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
