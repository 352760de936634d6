"""Benchmark of the Diffusion Transformer train step (run by ``experiments/bench.py
--suite dit``, or directly).

DiT-S/2 and DiT-B/2 (Peebles & Xie 2023, Table 1) on 32x32x4 latents, the input of the
paper's 256x256 ImageNet models, class-conditional over 1000 classes (+ the null class),
with the output of jaxgen's diffusion family (4 channels, eps prediction; the paper's
models also output 4 learned-variance channels). One train step: the DDPM denoising loss
(T = 1000, random labels), its gradient and an Adam update, jitted with the state donated.

Reported per model: parameters, compile time, median train-step time and images/s,
XLA's FLOP count of the step and the achieved GFLOP/s, and the paper's forward Gflops per
image (Table 4) for comparison with XLA's count. The paper's "Gflops" count a multiply-add
once (DiT-B/2: 12 blocks x 256 tokens x 12 d^2 weights = 21.7 G multiply-adds, plus
attention, = 23.0), XLA counts two FLOPs per multiply-add, and a train step costs about
three forward passes: expect XLA's train FLOPs per image near 6x the paper's figure. With
``--dtype bfloat16`` the network computes in bf16 from float32 parameters, as with
``train.compute_dtype``; ``--peak-tflops`` (the device's dense peak in that dtype) adds
the model FLOPs utilisation, train FLOPs / (step time x peak).

PyTorch peer: diffusers' ``DiTTransformer2DModel`` with the same transformer (patch 2,
4 -> 4 channels, 1000 classes, adaLN-Zero, tanh-GELU MLP of width 4d, biases
everywhere), trained by the same step: DDPM noising of random latents at random t in
[0, 1000), random labels, MSE against the noise, backward, ``torch.optim.Adam``; the
median of as many timed repeats after one warm-up, with ``--threads`` torch threads, on
CUDA when JAX runs on a GPU and torch has CUDA, under bf16 autocast with ``--dtype
bfloat16``. Parameter counts: diffusers gives every block its own copy of the timestep
MLP and class table (``norm1.emb``; its conversion script copies the paper's single
embedder into each), where jaxgen and the paper share one, so the peer has 11 extra
copies: 39,798,928 vs 32,858,896 parameters for S/2 and 147,427,600 vs 130,303,504 for
B/2 (+21% / +13%). Without those copies the counts are identical (recorded as the peer's
``params_shared_conditioning``). The copies add a little per-block embedding work and
their Adam updates; diffusers also drops 10% of the labels to the null class in train
mode (cheap). ``--no-peer`` skips the peer; without torch/diffusers it is skipped with a
note (``pip install -e '.[peers]'``).

  python experiments/bench_dit.py [--models S/2,B/2] [--batch 8] [--repeats 5]
      [--dtype float32|bfloat16] [--peak-tflops X] [--threads 2] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.bench import machine_info  # noqa: E402
from jaxgen import diffusion  # noqa: E402
from jaxgen.core import xla_options  # noqa: E402
from jaxgen.nets import DIT_SIZES, DiT, dit_kwargs  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# Peebles & Xie (2023), Table 4: forward Gflops of one 32x32x4 latent.
PAPER_GFLOPS = {"S/2": 6.06, "B/2": 23.01, "L/2": 80.71, "XL/2": 118.64}


def bench_model(name: str, batch: int, repeats: int, dtype: str, peak_tflops=None) -> dict:
    from experiments.bench import median_ms  # lazy: bench imports this module too
    size, patch = name.split("/")
    model = DiT(out_channels=4, patch_size=int(patch), num_classes=1000, **dit_kwargs(size))
    process = diffusion.ddpm_process()
    key = jax.random.key(0)
    x = jax.random.normal(key, (batch, 32, 32, 4))
    labels = jax.random.randint(key, (batch,), 0, 1000)
    params = jax.jit(model.init)(key, x[:1], jnp.zeros((1,), jnp.int32), labels[:1])["params"]
    n_params = sum(p.size for p in jax.tree.leaves(params))
    tx = optax.adam(1e-4)
    opt_state = tx.init(params)
    compute = jnp.dtype(dtype)

    def train_step(params, opt_state, x, labels, key):
        def loss_fn(p):
            pc = jax.tree.map(lambda a: a.astype(compute), p)
            fn = lambda xt, t: model.apply({"params": pc}, xt.astype(compute), t,
                                           labels).astype(jnp.float32)
            return diffusion.denoising_loss(fn, process, x, key).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    t0 = time.perf_counter()
    compiled = xla_options.jit(train_step, donate_argnums=(0, 1)).lower(
        params, opt_state, x, labels, key).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    state = {"p": params, "o": opt_state}

    def run():
        state["p"], state["o"], loss = compiled(state["p"], state["o"], x, labels, key)
        loss.block_until_ready()

    step_ms = median_ms(run, repeats, warmup=1)
    out = {"params": int(n_params), "batch": batch, "dtype": dtype, "compile_s": compile_s,
           "train_step_ms": step_ms, "images_per_s": batch / step_ms * 1e3,
           "train_flops": flops, "train_gflops_per_s": flops / step_ms / 1e6,
           "xla_train_gflops_per_image": flops / batch / 1e9,
           "paper_forward_gflops_per_image": PAPER_GFLOPS.get(name)}
    if peak_tflops:
        out["mfu"] = flops / (step_ms / 1e3) / (peak_tflops * 1e12)
    return out


def peer_modules():
    """(torch, diffusers, DiTTransformer2DModel, DDPMScheduler), None; or None and the
    reason when the peer is not installed."""
    try:
        import diffusers
        import torch
        from diffusers import DDPMScheduler, DiTTransformer2DModel
    except ImportError as e:
        return None, f"peer not installed ({e}); pip install -e '.[peers]'"
    return (torch, diffusers, DiTTransformer2DModel, DDPMScheduler), None


def bench_peer(name: str, batch: int, repeats: int, threads: int, dtype: str,
               mods) -> dict:
    """The diffusers DiT of the same size, one Adam train step timed like jaxgen's."""
    from experiments.bench import median_ms  # lazy: bench imports this module too
    torch, diffusers, DiTTransformer2DModel, DDPMScheduler = mods
    size, patch = name.split("/")
    depth, hidden, heads = DIT_SIZES[size]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = ("cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available()
              else "cpu")
    # in/out 4 channels (no learned-variance outputs, as jaxgen), adaLN-Zero, LayerNorm
    # eps 1e-6 as the paper and jaxgen (diffusers' default for the block norms is 1e-5).
    model = DiTTransformer2DModel(
        num_attention_heads=heads, attention_head_dim=hidden // heads, in_channels=4,
        out_channels=4, num_layers=depth, sample_size=32, patch_size=int(patch),
        num_embeds_ada_norm=1000, norm_type="ada_norm_zero", norm_eps=1e-6).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    # Every block's norm1.emb is a private copy of the conditioning embedder (timestep
    # MLP + class table with the null row) that jaxgen shares; count one copy only.
    n_shared = n_params - sum(p.numel() for n, p in model.named_parameters()
                              if ".norm1.emb." in n and not n.startswith("transformer_blocks.0."))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sched = DDPMScheduler(num_train_timesteps=1000)
    gen = torch.Generator(device).manual_seed(0)
    x0 = torch.randn(batch, 4, 32, 32, device=device, generator=gen)
    labels = torch.randint(0, 1000, (batch,), device=device, generator=gen)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def run():
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,), device=device)
        xt = sched.add_noise(x0, noise, t)
        with autocast:
            out = model(xt, t, labels).sample
        loss = torch.nn.functional.mse_loss(out.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        else:
            loss.item()

    step_ms = median_ms(run, repeats, warmup=1)
    return {"params": int(n_params), "params_shared_conditioning": int(n_shared),
            "batch": batch, "dtype": dtype, "device": device, "threads": threads,
            "train_step_ms": step_ms, "images_per_s": batch / step_ms * 1e3,
            "torch": torch.__version__, "diffusers": diffusers.__version__}


def run_suite(models, batch: int, repeats: int, dtype: str = "float32", peak_tflops=None,
              out_path: str | None = None, threads: int = 2, peer: bool = True) -> dict:
    """Benchmarks ``models`` (names such as 'S/2') and, with ``peer``, diffusers' DiT of
    the same size on ``threads`` torch threads; prints a table and writes JSON."""
    mods, why = peer_modules() if peer else (None, "--no-peer")
    if mods is None:
        print(f"peer skipped: {why}", flush=True)
    results = {"models": {}, "config": {"batch": batch, "repeats": repeats, "dtype": dtype,
                                        "threads": threads, "peer": why or "diffusers",
                                        "input": "32x32x4 latents, 1000 classes"},
               "machine": machine_info(),
               "loadavg_start": os.getloadavg()}
    for name in models:
        r = bench_model(name, batch, repeats, dtype, peak_tflops)
        results["models"][f"DiT-{name}"] = r
        print(f"DiT-{name:5s} {r['params'] / 1e6:7.1f}M params  compile {r['compile_s']:6.1f} s  "
              f"step {r['train_step_ms']:9.1f} ms  {r['images_per_s']:7.2f} img/s  "
              f"{r['xla_train_gflops_per_image']:6.1f} GFLOP/img (paper fwd "
              f"{r['paper_forward_gflops_per_image']})  {r['train_gflops_per_s']:6.1f} GFLOP/s"
              + (f"  MFU {100 * r['mfu']:.1f}%" if "mfu" in r else ""), flush=True)
        if mods is None:
            r["peer"] = {"skipped": why}
            continue
        p = r["peer"] = bench_peer(name, batch, repeats, threads, dtype, mods)
        r["ratio"] = r["train_step_ms"] / p["train_step_ms"]  # jaxgen / peer time
        p["train_gflops_per_s_xla_count"] = r["train_flops"] / p["train_step_ms"] / 1e6
        print(f"  peer    {p['params'] / 1e6:7.1f}M params ({p['params_shared_conditioning']:,}"
              f" with one conditioning embedder; jaxgen {r['params']:,})  step "
              f"{p['train_step_ms']:9.1f} ms  {p['images_per_s']:7.2f} img/s  "
              f"jaxgen/peer {r['ratio']:.2f}  (diffusers {p['diffusers']}, torch "
              f"{p['torch']}, {p['device']}, {threads} threads)", flush=True)
    results["loadavg_end"] = os.getloadavg()
    results["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    out_path = out_path or os.path.join(RESULTS, "bench_dit.json")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2, default=str)
    print(f"wrote {out_path}")
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="S/2,B/2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the peer")
    ap.add_argument("--no-peer", action="store_true", help="skip the diffusers peer")
    args = ap.parse_args(argv)
    run_suite([m for m in args.models.split(",") if m], args.batch, args.repeats, args.dtype,
              args.peak_tflops, args.out, args.threads, not args.no_peer)


if __name__ == "__main__":
    main()
