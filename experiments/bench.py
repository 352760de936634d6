"""Benchmark: the DDPM UNet train step and sampler step, next to diffusers.

The jaxgen UNet is configured to match diffusers'
``UNet2DModel(sample_size=32, in_channels=1, out_channels=1, layers_per_block=2,
block_out_channels=(32, 64, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D",
"DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
norm_num_groups=8)``: 1,623,169 parameters in both. With torch + diffusers installed
(``pip install -e '.[peers]'``, or ``make bench``) the peer runs in the same invocation.

  python experiments/bench.py [--batch 32] [--repeats 10] [--threads 2] [--no-peer]

Reports medians (ms), compile time, XLA's FLOP count and achieved GFLOP/s, peak
memory, and jaxgen/peer time ratios; writes JSON to experiments/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen import diffusion  # noqa: E402
from jaxgen.nets import UNet  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MATCHED = dict(out_channels=1, block_channels=(32, 64, 64), attention=(False, True, False),
               layers_per_block=2, num_groups=8, head_dim=8, time_conditioning="add")


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_jax(batch: int, repeats: int, sampler_batches, sampler_steps: int) -> dict:
    model = UNet(**MATCHED)
    process = diffusion.ddpm_process()
    rng = jax.random.key(0)
    x = jax.random.uniform(rng, (batch, 32, 32, 1), minval=-1, maxval=1)
    params = model.init(rng, x[:1], jnp.zeros((1,), jnp.int32))["params"]
    n_params = sum(p.size for p in jax.tree.leaves(params))
    tx = optax.adam(1e-4)
    opt_state = tx.init(params)

    def train_step(params, opt_state, x, key):
        def loss_fn(p):
            fn = lambda xt, t: model.apply({"params": p}, xt, t)
            return diffusion.denoising_loss(fn, process, x, key).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    t0 = time.perf_counter()
    lowered = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, x, rng)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    mem = compiled.memory_analysis()
    state = {"p": params, "o": opt_state}

    def run_train():
        state["p"], state["o"], loss = compiled(state["p"], state["o"], x, rng)
        loss.block_until_ready()

    train_ms = median_ms(run_train, repeats)
    out = {"params": int(n_params), "train_step_ms": train_ms, "train_compile_s": compile_s,
           "train_flops": flops, "train_gflops_per_s": flops / train_ms / 1e6,
           "train_temp_mb": (mem.temp_size_in_bytes / 2**20) if mem is not None else None}

    params = state["p"]
    model_fn = lambda xt, t: model.apply({"params": params}, xt, t)
    for b in sampler_batches:
        short = diffusion.ddpm_process(num_timesteps=sampler_steps)
        xT = diffusion.initial_noise(rng, (b, 32, 32, 1))
        t0 = time.perf_counter()
        sample = jax.jit(lambda x, k: diffusion.sample(model_fn, short, x, k)).lower(xT, rng).compile()
        out[f"sampler_compile_s_b{b}"] = time.perf_counter() - t0
        loop_ms = median_ms(lambda: sample(xT, rng).block_until_ready(), max(3, repeats // 3))
        fwd = jax.jit(model_fn)
        tt = jnp.zeros((b,), jnp.int32)
        fwd_ms = median_ms(lambda: fwd(xT, tt).block_until_ready(), repeats)
        out[f"sampler_step_ms_b{b}"] = loop_ms / sampler_steps
        out[f"forward_ms_b{b}"] = fwd_ms
        out[f"scan_overhead_ms_b{b}"] = loop_ms / sampler_steps - fwd_ms
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def bench_peer(batch: int, repeats: int, threads: int, sampler_batches, sampler_steps: int):
    try:
        import torch
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError as e:
        return {"skipped": f"peer not installed ({e}); pip install -e '.[peers]'"}
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, layers_per_block=2,
                        block_out_channels=(32, 64, 64),
                        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                        norm_num_groups=8)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sched = DDPMScheduler(num_train_timesteps=1000)
    x0 = torch.rand(batch, 1, 32, 32) * 2 - 1

    def run_train():
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        xt = sched.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(model(xt, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out = {"params": int(n_params), "train_step_ms": median_ms(run_train, repeats),
           "torch": torch.__version__}
    import diffusers
    out["diffusers"] = diffusers.__version__
    sched.set_timesteps(sampler_steps)
    with torch.no_grad():
        for b in sampler_batches:
            x = torch.randn(b, 1, 32, 32)

            def run_loop():
                y = x
                for t in sched.timesteps:
                    y = sched.step(model(y, t).sample, t, y).prev_sample
            out[f"sampler_step_ms_b{b}"] = median_ms(run_loop, max(3, repeats // 3), 1) / sampler_steps
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the peer")
    ap.add_argument("--sampler-steps", type=int, default=20,
                    help="steps per timed sampling loop (per-step time is reported)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--out", default=os.path.join(RESULTS, "bench_ddpm_unet.json"))
    args = ap.parse_args(argv)
    sampler_batches = (1, 16)

    ours = bench_jax(args.batch, args.repeats, sampler_batches, args.sampler_steps)
    peer = ({"skipped": "--no-peer"} if args.no_peer else
            bench_peer(args.batch, args.repeats, args.threads, sampler_batches, args.sampler_steps))
    rows = [("train step (batch %d)" % args.batch, "train_step_ms")] + [
        (f"sampler step (batch {b})", f"sampler_step_ms_b{b}") for b in sampler_batches]
    print(f"params: jaxgen {ours['params']:,}  peer {peer.get('params', 'n/a')}")
    print(f"{'':26s} {'jaxgen ms':>10s} {'peer ms':>10s} {'ratio':>7s}")
    ratios = {}
    for label, key in rows:
        p = peer.get(key)
        ratio = ours[key] / p if p else None
        ratios[key] = ratio
        print(f"{label:26s} {ours[key]:10.2f} {p if p else float('nan'):10.2f} "
              f"{ratio if ratio else float('nan'):7.2f}")
    print(f"train step: {ours['train_flops'] / 1e9:.1f} GFLOP (XLA cost analysis), "
          f"jaxgen {ours['train_gflops_per_s']:.1f} GFLOP/s"
          + (f", peer {ours['train_flops'] / peer['train_step_ms'] / 1e6:.1f} GFLOP/s "
             "(same FLOP count)" if "train_step_ms" in peer else ""))
    print(f"compile: train {ours['train_compile_s']:.1f} s; scan overhead per sampler step: "
          + ", ".join(f"b{b} {ours[f'scan_overhead_ms_b{b}']:.2f} ms" for b in sampler_batches))
    result = {"jaxgen": ours, "peer": peer, "ratios": ratios,
              "config": {"batch": args.batch, "repeats": args.repeats, "threads": args.threads,
                         "sampler_steps": args.sampler_steps, "matched_unet": MATCHED},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "jax": jax.__version__, "backend": jax.default_backend(),
                          "devices": [str(d) for d in jax.devices()]},
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
