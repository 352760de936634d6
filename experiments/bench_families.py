"""Benchmark of every training family through its generic interface: train step and sampler.

Each entry is a config from ``configs/`` (the family, architecture and sizes it names) run
on random data of its data shape, so the numbers measure exactly what
``python -m jaxgen.main`` compiles: ``family.train_step`` (jitted with the state donated)
and ``family.sample`` (jitted, ``--sample-batch`` samples). Per entry:

* train step: median wall time (ms), images/s, compile time, XLA's FLOP count
  (``cost_analysis``), achieved GFLOP/s and that as a fraction of this machine's measured
  float32 matmul peak (a square ``jnp.dot``, the best of a few sizes), and XLA's temporary
  buffer size (``memory_analysis``);
* sampler: median wall time of one whole ``sample`` call, and per sequential network
  evaluation (a diffusion sampler's steps, an autoregressive model's positions; 1 for
  one-shot decoders), with its compile time. (The VQ-VAE family decodes random codes;
  its prior is a separate run and is not benchmarked here.)

Peak resident memory of the process is reported once at the end (every entry adds to it).

  python experiments/bench_families.py [--entries NAME,...] [--repeats 10]
      [--sample-batch 16] [--out experiments/results/bench_families.json]

Writes JSON and a markdown table (same name, ``.md``) to ``experiments/results/``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import platform
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.bench import machine_info, median_ms  # noqa: E402
from jaxgen.core import xla_options  # noqa: E402
from jaxgen.train import get_family  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# name -> (config module, config arg, overrides, data shape). Diffusion samplers are timed
# with 20 DDIM steps (what one step costs does not depend on how many there are).
ENTRIES = {
    "ddpm_unet_mnist": ("ddpm_mnist", None,
                        {"sampler.method": "ddim", "sampler.num_steps": 20}, (28, 28, 1)),
    "rf_unet_mnist": ("rf_mnist", None, {"sampler.method": "euler", "sampler.num_steps": 20},
                      (28, 28, 1)),
    "vae_mlp_mnist": ("vae_mnist", None, {}, (28, 28, 1)),
    "vae_conv_mnist": ("vae_conv_mnist", None, {}, (28, 28, 1)),
    "dit_mnist": ("dit_mnist", None, {"sampler.num_steps": 20}, (28, 28, 1)),
    "dcgan_mnist": ("dcgan_mnist", None, {}, (28, 28, 1)),
    "wgan_gp_mnist": ("wgan_gp_mnist", None, {}, (28, 28, 1)),
    "pixelcnn_mnist": ("pixelcnn_mnist", None, {}, (28, 28, 1)),
    "gated_pixelcnn_mnist": ("gated_pixelcnn_mnist", None, {}, (28, 28, 1)),
    "vqvae_mnist": ("vqvae_mnist", None, {}, (28, 28, 1)),
}


def matmul_peak_gflops(repeats: int = 10) -> dict:
    """Best float32 GFLOP/s of a square ``jnp.dot`` over a few sizes (this machine's
    practical matmul peak, the denominator of every '% of peak')."""
    out = {}
    for n in (512, 1024, 2048):
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        f = jax.jit(jnp.dot)
        ms = median_ms(lambda: f(a, a).block_until_ready(), repeats)
        out[n] = 2 * n**3 / ms / 1e6
    return {"gflops": max(out.values()), "by_size": out}


def load_config(module: str, arg, overrides: dict):
    config = importlib.import_module(f"configs.{module}").get_config(arg)
    for path, value in overrides.items():
        node = config
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def sequential_evaluations(family, config) -> int:
    """How many network evaluations one ``sample`` call runs one after another."""
    if config.family == "diffusion":
        from jaxgen import diffusion
        s = config.sampler
        steps = s.num_steps or config.diffusion.num_timesteps
        return diffusion.evaluations(s.method, steps, s.corrector_steps)
    if config.family == "autoregressive":
        return int(np.prod(family.data_shape))   # one network pass per pixel
    return 1


def random_batch(config, shape, batch: int, rng) -> dict:
    x = jax.random.uniform(rng, (batch,) + tuple(shape), minval=-1.0, maxval=1.0)
    num_classes = int(config.model.get("num_classes", 0) or 0)
    labels = jnp.arange(batch, dtype=jnp.int32) % max(num_classes, 10)
    return {"x": x, "label": labels}


def bench_entry(name: str, repeats: int, sample_batch: int, peak: float) -> dict:
    module, arg, overrides, shape = ENTRIES[name]
    config = load_config(module, arg, overrides)
    family_cls = get_family(config.family)
    family_cls.validate_config(config)
    family = family_cls(config, shape)
    rng = jax.random.key(0)
    state = jax.jit(family.init)(rng)
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
    batch = random_batch(config, shape, config.train.batch_size, rng)

    t0 = time.perf_counter()
    compiled = xla_options.jit(family.train_step, donate_argnums=0).lower(
        state, batch, rng).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    mem = compiled.memory_analysis()
    box = {"state": state}

    def run_train():
        box["state"], metrics = compiled(box["state"], batch, rng)
        jax.block_until_ready(metrics)

    train_ms = median_ms(run_train, repeats)
    gflops = flops / train_ms / 1e6
    out = {"config": module, "family": config.family, "params": n_params,
           "batch": int(config.train.batch_size), "data_shape": list(shape),
           "train_step_ms": train_ms,
           "images_per_s": 1e3 * config.train.batch_size / train_ms,
           "train_compile_s": compile_s, "train_gflop": flops / 1e9,
           "train_gflops_per_s": gflops, "train_fraction_of_peak": gflops / peak,
           "train_temp_mb": mem.temp_size_in_bytes / 2**20 if mem is not None else None}

    params = box["state"].ema_params
    t0 = time.perf_counter()
    sample = xla_options.jit(family.sample, static_argnums=2).lower(
        params, rng, sample_batch).compile()
    out["sample_compile_s"] = time.perf_counter() - t0
    sample_ms = median_ms(lambda: jax.block_until_ready(sample(params, rng)),
                          max(3, repeats // 2), warmup=1)
    evals = sequential_evaluations(family, config)
    out.update({"sample_batch": sample_batch, "sample_ms": sample_ms,
                "sample_sequential_evals": evals, "sample_ms_per_eval": sample_ms / evals})
    return out


def peer_vae_mlp(config, repeats: int, threads: int) -> dict:
    """The same MLP VAE step in PyTorch: dynamic binarization, encoder Linear layers to
    (mean, log-variance), one reparameterised sample, Bernoulli decoder logits, the
    negative ELBO averaged over the batch, Adam and an EMA of the parameters."""
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d, hidden, latent = 784, tuple(config.vae.hidden_dims), config.vae.latent_dim
    widths = (d,) + hidden
    enc = nn.Sequential(*[m for a, b in zip(widths[:-1], widths[1:])
                          for m in (nn.Linear(a, b), nn.ReLU())])
    heads = nn.Linear(widths[-1], 2 * latent)
    dwidths = (latent,) + hidden[::-1]
    dec = nn.Sequential(*[m for a, b in zip(dwidths[:-1], dwidths[1:])
                          for m in (nn.Linear(a, b), nn.ReLU())], nn.Linear(dwidths[-1], d))
    modules = nn.ModuleList([enc, heads, dec])
    params = list(modules.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=config.optim.learning_rate, eps=config.optim.eps)
    x = torch.rand(config.train.batch_size, d)

    def step():
        xb = torch.bernoulli(x)
        mean, logvar = heads(enc(xb)).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = nn.functional.binary_cross_entropy_with_logits(dec(z), xb, reduction="none")
        kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).sum(-1)
        loss = (rec.sum(-1) + kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - config.optim.ema_decay)

    n = sum(p.numel() for p in params)
    return {"params": n, "train_step_ms": median_ms(step, repeats), "torch": torch.__version__}


def peer_dcgan(config, repeats: int, threads: int) -> dict:
    """The same DCGAN step in PyTorch (``ConvTranspose2d``/``Conv2d`` 4x4, stride 2,
    padding 1 = 'SAME' here): one discriminator update on the real batch and a detached
    fake batch (non-saturating loss, batch norm in training mode), one generator update on
    fresh z, Adam for both, an EMA of the generator."""
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = config.gan
    (c0, *ups), (d0, *downs) = tuple(g.g_channels), tuple(g.d_channels)
    side = 28 // 2 ** len(g.g_channels)
    layers = [nn.Linear(g.latent_dim, side * side * c0, bias=False),
              nn.Unflatten(1, (c0, side, side)), nn.BatchNorm2d(c0), nn.ReLU()]
    prev = c0
    for ch in ups:
        layers += [nn.ConvTranspose2d(prev, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch),
                   nn.ReLU()]
        prev = ch
    gen = nn.Sequential(*layers, nn.ConvTranspose2d(prev, 1, 4, 2, 1), nn.Tanh())
    layers, prev = [nn.Conv2d(1, d0, 4, 2, 1), nn.LeakyReLU(0.2)], d0
    for ch in downs:
        layers += [nn.Conv2d(prev, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch),
                   nn.LeakyReLU(0.2)]
        prev = ch
    side = 28 // 2 ** len(g.d_channels)
    disc = nn.Sequential(*layers, nn.Flatten(), nn.Linear(prev * side * side, 1))
    g_params, d_params = list(gen.parameters()), list(disc.parameters())
    ema = [p.detach().clone() for p in g_params]
    g_opt = torch.optim.Adam(g_params, lr=config.optim.learning_rate,
                             betas=(config.optim.b1, config.optim.b2))
    d_opt = torch.optim.Adam(d_params, lr=g.d_learning_rate, betas=(g.d_b1, g.d_b2))
    b = config.train.batch_size
    x = torch.rand(b, 1, 28, 28) * 2 - 1
    sp = nn.functional.softplus

    def step():
        fake = gen(torch.randn(b, g.latent_dim)).detach()
        d_loss = sp(-disc(x)).mean() + sp(disc(fake)).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        g_loss = sp(-disc(gen(torch.randn(b, g.latent_dim)))).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, g_params, 1.0 - config.optim.ema_decay)

    n = sum(p.numel() for p in g_params + d_params)
    return {"params": n, "train_step_ms": median_ms(step, repeats), "torch": torch.__version__}


# entry -> its PyTorch peer at equal parameters (used when torch is installed).
PEERS = {"vae_mlp_mnist": peer_vae_mlp, "dcgan_mnist": peer_dcgan}


def run_peer(name: str, repeats: int, threads: int) -> dict:
    if importlib.util.find_spec("torch") is None:
        return {"error": "peer not installed (no torch); pip install -e '.[peers]'"}
    module, arg, overrides, _ = ENTRIES[name]
    return PEERS[name](load_config(module, arg, overrides), repeats, threads)


def markdown(results: dict, peak: float) -> str:
    lines = [f"Matmul peak (float32 `jnp.dot`): {peak:.0f} GFLOP/s.", "",
             "| entry | family | params | batch | train ms | img/s | GFLOP/s | % peak | "
             "compile s | temp MiB | sample ms (batch) | ms / eval |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} |" + " |" * 10)
            continue
        lines.append(
            f"| {name} | {r['family']} | {r['params']:,} | {r['batch']} | "
            f"{r['train_step_ms']:.1f} | {r['images_per_s']:.0f} | "
            f"{r['train_gflops_per_s']:.1f} | {100 * r['train_fraction_of_peak']:.0f}% | "
            f"{r['train_compile_s']:.1f} | {r['train_temp_mb']:.0f} | "
            f"{r['sample_ms']:.1f} ({r['sample_batch']}) | {r['sample_ms_per_eval']:.2f} |")
    peers = [(n, r) for n, r in results.items() if "train_step_ms" in r.get("peer", {})]
    if peers:
        lines += ["", "| entry | ours ms | peer ms | ours / peer | peer params |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in peers:
            p = r["peer"]
            lines.append(f"| {name} | {r['train_step_ms']:.1f} | {p['train_step_ms']:.1f} | "
                         f"{r['train_step_ms'] / p['train_step_ms']:.2f} | {p['params']:,} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", default=",".join(ENTRIES),
                    help=f"comma-separated subset of {', '.join(ENTRIES)}")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--sample-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the peers")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--out", default=os.path.join(RESULTS, "bench_families.json"))
    args = ap.parse_args(argv)
    names = [n for n in args.entries.split(",") if n]
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        ap.error(f"unknown entries {unknown}; known: {', '.join(ENTRIES)}")

    load_start = os.getloadavg()
    peak = matmul_peak_gflops()
    print(f"matmul peak: {peak['gflops']:.1f} GFLOP/s", flush=True)
    results = {}
    for name in names:
        try:
            results[name] = bench_entry(name, args.repeats, args.sample_batch, peak["gflops"])
            if name in PEERS and not args.no_peer:
                results[name]["peer"] = run_peer(name, args.repeats, args.threads)
        except Exception as e:  # one broken entry must not lose the others' numbers
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        print(name, json.dumps(results[name]), flush=True)

    report = {"benchmark": "families", "date": datetime.datetime.now().isoformat(),
              "jax": jax.__version__, "backend": jax.default_backend(),
              "compiler_options": xla_options.options(),
              "device": str(jax.devices()[0].device_kind), "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "host": machine_info(), "loadavg_start": load_start,
              "loadavg_end": os.getloadavg(), "matmul_peak": peak,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
              "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    table = markdown(results, peak["gflops"])
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
