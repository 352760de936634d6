"""Benchmark: the DDPM UNet train step, sampler step and full sampling runs, next to diffusers.

The jaxgen UNet is configured to match diffusers'
``UNet2DModel(sample_size=32, in_channels=1, out_channels=1, layers_per_block=2,
block_out_channels=(32, 64, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D",
"DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
norm_num_groups=8)``: 1,623,169 parameters in both. With torch + diffusers installed
(``pip install -e '.[peers]'``, or ``make bench``) the peer runs in the same invocation.

  python experiments/bench.py [--batch 32] [--repeats 10] [--threads 2] [--no-peer]
      [--full-steps 50] [--full-repeats 5] [--full-methods ddim,dpm_solver++,euler]
      [--skip-train] [--suite unet|dit|families|all] [--dit-batch 8] [--dit-repeats 3]

``--suite dit`` times the DiT-S/2 and DiT-B/2 train steps instead (see
experiments/bench_dit.py); ``--suite families`` every training family through its
generic interface, with PyTorch peers where they exist (experiments/bench_families.py);
``--suite all`` runs all three.

Reports medians (ms), compile time, XLA's FLOP count and achieved GFLOP/s, peak
memory, and jaxgen/peer time ratios; writes JSON to experiments/results/.

Full sampling runs: a ``--full-steps``-step DDIM, DPM-Solver++(2M) and Euler run of
the 1000-step linear-schedule DDPM process, at batch 1 and 16. jaxgen compiles the
whole loop (``jax.jit(diffusion.sample)``, one ``lax.scan``; params passed as an
argument); the peer is the diffusers pipeline loop (``DDIMScheduler``,
``DPMSolverMultistepScheduler``, ``EulerDiscreteScheduler`` with ``scale_model_input``)
driving ``UNet2DModel`` under ``torch.no_grad()`` with ``--threads`` threads. jaxgen and
peer runs alternate within each repeat, so drift in machine load hits both alike. Also
reported: the jitted forward pass at the same batch; the "scan overhead", i.e.
whole-loop time per step minus one forward (everything that is not the network: the
solver update, the scan, the noise), and the same quantity for the peer's loop; and
"loop only", the jaxgen loop around a network-free model_fn, which measures that
non-network cost directly (the difference of two medians is noisier than 1 ms at
batch 16).
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
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen import diffusion  # noqa: E402
from jaxgen.core import xla_options  # noqa: E402
from jaxgen.nets import UNet  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MATCHED = dict(out_channels=1, block_channels=(32, 64, 64), attention=(False, True, False),
               layers_per_block=2, num_groups=8, head_dim=8, time_conditioning="add")


def cpu_model() -> dict:
    """The host CPU's model name and the vector extensions that decide XLA:CPU's and
    PyTorch's kernels (read from /proc/cpuinfo; empty fields where it is missing)."""
    name, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"cpu_model": name, "cpu_isa": [f for f in wanted if f in flags]}


def machine_info() -> dict:
    """Where a benchmark ran: OS, CPU model and extensions, core count, JAX, devices and
    the compile options jaxgen passes (results from different machines differ ~2x)."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), **cpu_model(),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "compiler_options": xla_options.options(),
            "devices": [str(d) for d in jax.devices()]}


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def interleaved_median_ms(fns: dict, *args, repeats: int, warmup: int = 2) -> dict:
    """Median ms of each ``fns[key](*args)`` (blocking on its result), the functions
    taking turns within every repeat so that drift in machine load hits all alike."""
    for f in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(f(*args))
    times = {key: [] for key in fns}
    for _ in range(repeats):
        for key, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[key].append(1e3 * (time.perf_counter() - t0))
    return {key: statistics.median(t) for key, t in times.items()}


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
    lowered = xla_options.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, x, rng)
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
        sample = xla_options.jit(lambda x, k: diffusion.sample(model_fn, short, x, k)).lower(
            xT, rng).compile()
        out[f"sampler_compile_s_b{b}"] = time.perf_counter() - t0
        loop_ms = median_ms(lambda: sample(xT, rng).block_until_ready(), max(3, repeats // 3))
        fwd = xla_options.jit(model_fn)
        tt = jnp.zeros((b,), jnp.int32)
        fwd_ms = median_ms(lambda: fwd(xT, tt).block_until_ready(), repeats)
        out[f"sampler_step_ms_b{b}"] = loop_ms / sampler_steps
        out[f"forward_ms_b{b}"] = fwd_ms
        out[f"scan_overhead_ms_b{b}"] = loop_ms / sampler_steps - fwd_ms
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peer_unet(threads: int):
    """The matched diffusers UNet2DModel (and the torch module), or (None, reason)."""
    try:
        import torch
        from diffusers import UNet2DModel
    except ImportError as e:
        return None, f"peer not installed ({e}); pip install -e '.[peers]'"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, layers_per_block=2,
                        block_out_channels=(32, 64, 64),
                        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                        norm_num_groups=8)
    return (torch, model), None


def bench_peer(batch: int, repeats: int, threads: int, sampler_batches, sampler_steps: int):
    peer, why = peer_unet(threads)
    if peer is None:
        return {"skipped": why}
    torch, model = peer
    from diffusers import DDPMScheduler
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


# jaxgen method -> (its grid spacing, the diffusers scheduler with the same algorithm and
# default spacing). DDIM: 'leading' (diffusers' DDIMScheduler default, steps_offset 0);
# DPM-Solver++(2M) and Euler: 'linspace'.
FULL_METHODS = {"ddim": ("leading", "DDIMScheduler"),
                "dpm_solver++": ("linspace", "DPMSolverMultistepScheduler"),
                "euler": ("linspace", "EulerDiscreteScheduler")}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def _peer_loop(torch, model, sched_name: str, steps: int, x):
    """One diffusers sampling run (the loop of its DDPM/DDIM/DPM pipelines)."""
    import diffusers
    kwargs = (dict(algorithm_type="dpmsolver++", solver_order=2)
              if sched_name == "DPMSolverMultistepScheduler" else {})
    sched = getattr(diffusers, sched_name)(num_train_timesteps=1000, **kwargs)

    def run():
        with torch.no_grad():
            sched.set_timesteps(steps)
            y = x * sched.init_noise_sigma
            for t in sched.timesteps:
                eps = model(sched.scale_model_input(y, t), t).sample
                y = sched.step(eps, t, y).prev_sample
        return y
    return run


def bench_full_sampling(batches, steps: int, repeats: int, threads: int, methods, peer: bool):
    """Whole sampling runs, jaxgen's compiled loop vs the diffusers scheduler loop.

    Returns a dict keyed "{method}_b{batch}" with ms per step (median over ``repeats``
    alternating jaxgen/peer runs after one warm-up run each), compile time, forward time
    and the scan overhead per step.
    """
    model = UNet(**MATCHED)
    process = diffusion.ddpm_process()
    rng = jax.random.key(0)
    params = model.init(rng, jnp.zeros((1, 32, 32, 1)), jnp.zeros((1,), jnp.int32))["params"]
    peer_mod, why = peer_unet(threads) if peer else (None, "--no-peer")
    out = {"steps": steps, "repeats": repeats, "peer": why or "diffusers",
           "loadavg_start": os.getloadavg()}
    if peer_mod is not None:
        import diffusers
        out["diffusers"] = diffusers.__version__
    fwd = xla_options.jit(lambda p, x, t: model.apply({"params": p}, x, t))
    for b in batches:
        xT = diffusion.initial_noise(rng, (b, 32, 32, 1))
        tt = jnp.full((b,), 500, jnp.int32)
        if peer_mod is not None:
            torch, tmodel = peer_mod
            xp = torch.randn(b, 1, 32, 32)
            t_peer = torch.tensor(500)

            def peer_fwd():
                with torch.no_grad():
                    tmodel(xp, t_peer)
        jax_fwd = lambda: fwd(params, xT, tt).block_until_ready()
        jax_fwd()
        fwd_j, fwd_p = [], []
        for _ in range(max(5, 3 * repeats)):
            fwd_j.append(_timed(jax_fwd))
            if peer_mod is not None:
                fwd_p.append(_timed(peer_fwd))
        out[f"forward_ms_b{b}"] = statistics.median(fwd_j)
        if fwd_p:
            out[f"peer_forward_ms_b{b}"] = statistics.median(fwd_p)
        for method in methods:
            spacing, sched_name = FULL_METHODS[method]

            def sample(p, x, k, method=method, spacing=spacing):
                fn = lambda xt, t: model.apply({"params": p}, xt, t)
                return diffusion.sample(fn, process, x, k, method=method, num_steps=steps,
                                        spacing=spacing)

            t0 = time.perf_counter()
            compiled = xla_options.jit(sample).lower(params, xT, rng).compile()
            compile_s = time.perf_counter() - t0
            jax_run = lambda: compiled(params, xT, rng).block_until_ready()
            peer_run = (_peer_loop(peer_mod[0], peer_mod[1], sched_name, steps, xp)
                        if peer_mod is not None else None)
            jax_run()
            if peer_run is not None:
                peer_run()
            tj, tpeer = [], []
            for _ in range(repeats):
                tj.append(_timed(jax_run))
                if peer_run is not None:
                    tpeer.append(_timed(peer_run))
            r = {"compile_s": compile_s, "run_ms": statistics.median(tj),
                 "step_ms": statistics.median(tj) / steps, "runs_ms": tj}
            r["scan_overhead_ms"] = r["step_ms"] - out[f"forward_ms_b{b}"]
            # The same loop around a network-free model_fn (eps_hat = 0.1 x): what the scan,
            # the grid lookups, the noise and the solver update cost per step on their own.
            # A difference of two ~100 ms medians cannot resolve 1 ms at batch 16; this can.
            null = xla_options.jit(lambda x, k, method=method, spacing=spacing: diffusion.sample(
                lambda xt, t: 0.1 * xt, process, x, k, method=method, num_steps=steps,
                spacing=spacing)).lower(xT, rng).compile()
            r["loop_only_step_ms"] = median_ms(
                lambda: null(xT, rng).block_until_ready(), 3 * repeats) / steps
            if tpeer:
                r.update(peer_run_ms=statistics.median(tpeer),
                         peer_step_ms=statistics.median(tpeer) / steps, peer_runs_ms=tpeer,
                         peer_scheduler=sched_name)
                r["peer_loop_overhead_ms"] = r["peer_step_ms"] - out[f"peer_forward_ms_b{b}"]
                r["ratio"] = r["step_ms"] / r["peer_step_ms"]
                r["speedup"] = r["peer_step_ms"] / r["step_ms"]
            out[f"{method}_b{b}"] = r
            print(f"  full {method:13s} b{b:<3d} jaxgen {r['step_ms']:7.2f} ms/step"
                  + (f", peer {r['peer_step_ms']:7.2f} ms/step, ratio {r['ratio']:.2f}"
                     if tpeer else "") + f" (compile {compile_s:.1f} s)", flush=True)
    # Other processes on the two cores distort the timings (torch's OpenMP threads most):
    # the load average before and after tells whether a run can be trusted.
    out["loadavg_end"] = os.getloadavg()
    return out


def print_full_sampling(full: dict, batches, methods) -> None:
    print(f"\nfull sampling runs ({full['steps']} steps, median of {full['repeats']}; "
          f"peer: {full['peer']}; load average {full['loadavg_start'][0]:.1f} -> "
          f"{full['loadavg_end'][0]:.1f})")
    print(f"{'':22s} {'jaxgen':>9s} {'peer':>9s} {'jax/peer':>9s} {'compile':>8s} "
          f"{'forward':>8s} {'scan ovh':>9s} {'loop only':>9s} {'peer ovh':>9s}")
    print(f"{'':22s} {'ms/step':>9s} {'ms/step':>9s} {'':>9s} {'s':>8s} "
          f"{'ms':>8s} {'ms/step':>9s} {'ms/step':>9s} {'ms/step':>9s}")
    nan = float("nan")
    for b in batches:
        for method in methods:
            r = full[f"{method}_b{b}"]
            print(f"{method + f' (batch {b})':22s} {r['step_ms']:9.2f} "
                  f"{r.get('peer_step_ms', nan):9.2f} {r.get('ratio', nan):9.2f} "
                  f"{r['compile_s']:8.1f} {full[f'forward_ms_b{b}']:8.2f} "
                  f"{r['scan_overhead_ms']:9.2f} {r['loop_only_step_ms']:9.3f} "
                  f"{r.get('peer_loop_overhead_ms', nan):9.2f}")
        if f"peer_forward_ms_b{b}" in full:
            print(f"{'':22s} (peer forward at batch {b}: {full[f'peer_forward_ms_b{b}']:.2f} ms)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the peer")
    ap.add_argument("--sampler-steps", type=int, default=20,
                    help="steps per timed sampling loop (per-step time is reported)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--full-steps", type=int, default=50,
                    help="steps of each full sampling run (0 skips that section)")
    ap.add_argument("--full-repeats", type=int, default=5)
    ap.add_argument("--full-methods", default=",".join(FULL_METHODS))
    ap.add_argument("--skip-train", action="store_true",
                    help="only the full sampling runs (keeps the other fields of --out)")
    ap.add_argument("--out", default=os.path.join(RESULTS, "bench_ddpm_unet.json"))
    ap.add_argument("--suite", default="unet", choices=("unet", "dit", "families", "all"),
                    help="'dit': the DiT-S/2 and DiT-B/2 train steps (experiments/"
                         "bench_dit.py, results/bench_dit.json); 'families': every "
                         "family (experiments/bench_families.py); 'all': all of them")
    ap.add_argument("--dit-batch", type=int, default=8)
    ap.add_argument("--dit-repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.suite in ("families", "all"):
        from experiments import bench_families
        bench_families.main(["--threads", str(args.threads)] + (["--no-peer"] if args.no_peer
                                                                 else []))
        if args.suite == "families":
            return
    if args.suite in ("dit", "all"):
        from experiments import bench_dit
        bench_dit.run_suite(["S/2", "B/2"], args.dit_batch, args.dit_repeats,
                            threads=args.threads, peer=not args.no_peer)
        if args.suite == "dit":
            return
    sampler_batches = (1, 16)
    full_methods = [m for m in args.full_methods.split(",") if m]
    for m in full_methods:
        if m not in FULL_METHODS:
            raise SystemExit(f"--full-methods: {m!r} is not one of {tuple(FULL_METHODS)}")
    full = None
    if args.full_steps > 0:
        full = bench_full_sampling(sampler_batches, args.full_steps, args.full_repeats,
                                   args.threads, full_methods, not args.no_peer)
    if args.skip_train:
        result = {}
        if os.path.exists(args.out):
            with open(args.out) as f:
                result = json.load(f)
        if full is not None:
            print_full_sampling(full, sampler_batches, full_methods)
            result["full_sampling"] = full
            result["full_sampling_time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"wrote {args.out}")
        return

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
    if full is not None:
        print_full_sampling(full, sampler_batches, full_methods)
    result = {"jaxgen": ours, "peer": peer, "ratios": ratios, "full_sampling": full,
              "config": {"batch": args.batch, "repeats": args.repeats, "threads": args.threads,
                         "sampler_steps": args.sampler_steps, "full_steps": args.full_steps,
                         "full_repeats": args.full_repeats, "matched_unet": MATCHED},
              "machine": machine_info(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
