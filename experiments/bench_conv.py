"""Benchmark: 3x3 convolution forward and forward+backward on XLA, plain vs jaxgen.

"plain" is ``lax.conv_general_dilated`` (+ bias) differentiated by XLA's
autodiff; "custom" is ``jaxgen.nets.conv.conv2d`` with its custom VJP (batch-
chunked weight gradient, 2-D matmul for 1x1 kernels). Forward+backward returns
the output and the gradients w.r.t. x, w and b, so the forward convolution
cannot be dead-code eliminated (a convolution's gradients do not need its
output).

  python experiments/bench_conv.py [--batch 32] [--repeats 30] [--warmup 3] [--core-only]

Plain and custom calls are interleaved within each repeat (in rotating order)
so that drift in machine load hits both alike; every figure is a median over repeats after
warm-up. FLOPs count multiply-adds as 2: forward 2*N*H_out*W_out*K*K*C_in*C_out,
forward+backward 3x that (input and weight gradients cost one forward each).
Writes JSON to experiments/results/conv_bench.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen.core import xla_options  # noqa: E402
from jaxgen.nets.conv import conv2d  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# (H=W, C_in, C_out, K, stride). The first four are the headline cases; the
# rest are the other convolutions of the DDPM UNet (downsampling convs, the
# 1x1 residual shortcut when channels change).
CORE_CASES = [(32, 32, 32, 3, 1), (32, 64, 64, 3, 1), (16, 64, 64, 3, 1), (8, 64, 64, 3, 1)]
EXTRA_CASES = [(32, 32, 32, 3, 2), (16, 64, 64, 3, 2), (32, 32, 64, 1, 1)]


def plain_conv(x, w, b, stride):
    """XLA convolution with PyTorch padding=K//2; autodiff gives its backward."""
    p = w.shape[0] // 2
    y = lax.conv_general_dilated(x, w, (stride, stride), ((p, p), (p, p)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


def custom_conv(x, w, b, stride):
    return conv2d(x, w, b, stride=stride)


def make_fns(conv, stride):
    """Jitted forward and forward+backward functions for one implementation.

    Returns:
        (fwd, fwd_bwd): fwd(x, w, b) -> y of shape (N, H_out, W_out, C_out);
        fwd_bwd(x, w, b, ct) -> (y, dx, dw, db).
    """
    fwd = xla_options.jit(lambda x, w, b: conv(x, w, b, stride))

    def fwd_bwd(x, w, b, ct):
        y, vjp = jax.vjp(lambda x, w, b: conv(x, w, b, stride), x, w, b)
        return (y,) + vjp(ct)

    return fwd, xla_options.jit(fwd_bwd)


def time_interleaved(fns: dict, repeats: int, warmup: int) -> dict:
    """Median/min/quartile wall times in ms of zero-argument callables, interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    names = list(fns)
    for rep in range(repeats):
        # Rotate the order each repeat: whichever call follows a big one pays
        # for its freed buffers and evicted caches, and that must not always
        # be the same variant.
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            t0 = time.perf_counter()
            jax.block_until_ready(fns[name]())
            times[name].append(1e3 * (time.perf_counter() - t0))
    out = {}
    for name, ts in times.items():
        q = np.percentile(ts, [25, 75])
        out[name] = dict(median_ms=statistics.median(ts), min_ms=min(ts),
                         p25_ms=float(q[0]), p75_ms=float(q[1]))
    return out


def max_rel_err(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def bench_case(batch, hw, c_in, c_out, k, stride, repeats, warmup, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, hw, hw, c_in), np.float32))
    w = jnp.asarray((rng.standard_normal((k, k, c_in, c_out)) / np.sqrt(k * k * c_in))
                    .astype(np.float32))
    b = jnp.asarray(rng.standard_normal((c_out,), np.float32))
    h_out = (hw - 1) // stride + 1
    ct = jnp.asarray(rng.standard_normal((batch, h_out, h_out, c_out), np.float32))

    plain_fwd, plain_fb = make_fns(plain_conv, stride)
    custom_fwd, custom_fb = make_fns(custom_conv, stride)
    # Correctness first: the custom path must match XLA's autodiff.
    errs = [max_rel_err(got, want)
            for got, want in zip(custom_fb(x, w, b, ct), plain_fb(x, w, b, ct))]

    timings = time_interleaved({
        "plain_fwd": lambda: plain_fwd(x, w, b),
        "custom_fwd": lambda: custom_fwd(x, w, b),
        "plain_fwd_bwd": lambda: plain_fb(x, w, b, ct),
        "custom_fwd_bwd": lambda: custom_fb(x, w, b, ct),
    }, repeats, warmup)
    flops_fwd = 2 * batch * h_out * h_out * k * k * c_in * c_out
    result = dict(batch=batch, hw=hw, c_in=c_in, c_out=c_out, kernel=k, stride=stride,
                  gflop_fwd=flops_fwd / 1e9, gflop_fwd_bwd=3 * flops_fwd / 1e9,
                  max_rel_err=dict(zip(["y", "dx", "dw", "db"], errs)))
    for name, t in timings.items():
        flops = flops_fwd * (3 if name.endswith("fwd_bwd") else 1)
        result[name] = dict(t, gflops=flops / (t["median_ms"] * 1e6))
    result["speedup_fwd"] = timings["plain_fwd"]["median_ms"] / timings["custom_fwd"]["median_ms"]
    result["speedup_fwd_bwd"] = (timings["plain_fwd_bwd"]["median_ms"]
                                 / timings["custom_fwd_bwd"]["median_ms"])
    return result


def print_table(results):
    head = (f"{'case (N,HW,Cin->Cout,K,s)':<28}| {'fwd plain':>16} | {'fwd custom':>16} | "
            f"{'f+b plain':>16} | {'f+b custom':>16} | {'f+b x':>5} | max rel err")
    print(head)
    print("-" * len(head))
    for r in results:
        case = f"{r['batch']},{r['hw']}x{r['hw']},{r['c_in']}->{r['c_out']},{r['kernel']},{r['stride']}"
        cells = [f"{r[n]['median_ms']:7.2f}ms {r[n]['gflops']:5.0f}GF"
                 for n in ("plain_fwd", "custom_fwd", "plain_fwd_bwd", "custom_fwd_bwd")]
        err = max(r["max_rel_err"].values())
        print(f"{case:<28}| " + " | ".join(f"{c:>16}" for c in cells)
              + f" | {r['speedup_fwd_bwd']:4.2f}x | {err:.1e}")
    tot_plain = sum(r["plain_fwd_bwd"]["median_ms"] for r in results)
    tot_custom = sum(r["custom_fwd_bwd"]["median_ms"] for r in results)
    print(f"sum of fwd+bwd medians: plain {tot_plain:.1f} ms, custom {tot_custom:.1f} ms "
          f"({tot_plain / tot_custom:.2f}x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--core-only", action="store_true",
                        help="only the four headline 3x3 stride-1 cases")
    parser.add_argument("--out", default=os.path.join(RESULTS, "conv_bench.json"))
    args = parser.parse_args()

    cases = CORE_CASES + ([] if args.core_only else EXTRA_CASES)
    load_before = os.getloadavg()
    results = []
    for hw, c_in, c_out, k, stride in cases:
        results.append(bench_case(args.batch, hw, c_in, c_out, k, stride,
                                  args.repeats, args.warmup))
        r = results[-1]
        print(f"done {hw}x{hw} {c_in}->{c_out} K{k} s{stride}: fwd+bwd "
              f"{r['plain_fwd_bwd']['median_ms']:.2f} -> {r['custom_fwd_bwd']['median_ms']:.2f} ms",
              file=sys.stderr, flush=True)
    print_table(results)

    record = dict(
        benchmark="conv2d plain XLA autodiff vs jaxgen custom VJP",
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        jax=jax.__version__, backend=jax.default_backend(),
        device=str(jax.devices()[0].device_kind), cpu_count=os.cpu_count(),
        machine=platform.machine(), python=platform.python_version(),
        repeats=args.repeats, warmup=args.warmup,
        loadavg_before=load_before, loadavg_after=os.getloadavg(),
        results=results,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
