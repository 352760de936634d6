"""Mode collapse of GAN losses on the 2-D ring and grid benchmarks, measured with the
published protocol so the numbers compare with VEEGAN (Srivastava et al. 2017, Table 1),
PacGAN (Lin et al. 2018, Table 1) and GDPP (Elfeki et al. 2019, Table 1):

* ring: 8 Gaussians, means on a circle of radius 1, std 0.01;
* grid: 25 Gaussians, means {-4, -2, 0, 2, 4}^2, std 0.05;
* 2,500 samples from the trained generator; a sample is high quality if within 3 std of
  its nearest mean; a mode is covered if it is the nearest mean of at least one
  high-quality sample (``jaxgen.metrics.mode_coverage``, min_count 1);
* several independent runs (seeds) per (loss, dataset); mean and standard error.

The densities are built here from those parameters (jaxgen's toy '8gaussians' and
'25gaussians' are rescaled to unit variance and have other stds). Training goes through
``GANFamily.train_step`` with the MLP players of configs/gan_toy.py (2-D z; 2 hidden
layers of 128 ReLU in both players) and fresh data every step; the runs of one
(loss, dataset) are vmapped over seeds and scanned over steps in one compiled program.

Usage:
  .venv/bin/python experiments/gan_mode_collapse.py --steps 6000   # ~40 min, 2 busy cores
  .venv/bin/python experiments/gan_mode_collapse.py --steps 200 --runs 2 --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from configs import gan_toy  # noqa: E402
from jaxgen import metrics, viz  # noqa: E402
from jaxgen.train.gan import GANFamily  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def protocol_mixture(name: str):
    """(means (K, 2), std) of the benchmark densities."""
    if name == "ring":
        a = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(a), np.sin(a)], 1), 0.01
    g = np.arange(-4.0, 5.0, 2.0)
    gx, gy = np.meshgrid(g, g, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], 1), 0.05


def mixture_log_prob(means, std):
    def log_prob(x):
        d2 = np.sum((x[:, None, :] - means[None]) ** 2, -1)
        comp = -d2 / (2 * std**2) - np.log(2 * np.pi * std**2) - np.log(len(means))
        top = comp.max(1, keepdims=True)
        return (top + np.log(np.exp(comp - top).sum(1, keepdims=True)))[:, 0]
    return log_prob


# Published rows: (modes, % high quality) on ring / grid.
PUBLISHED = {
    "GAN (VEEGAN Table 1)": ((1.0, 99.3), (3.3, 0.5)),
    "Unrolled GAN (VEEGAN Table 1)": ((7.6, 35.6), (23.6, 16.0)),
    "VEEGAN (VEEGAN Table 1)": ((8.0, 52.9), (24.6, 40.0)),
    "WGAN-GP (GDPP Table 1)": ((6.8, 59.6), (24.2, 28.7)),
}


def run_group(loss: str, dataset: str, runs: int, steps: int, batch: int, seed: int):
    """Trains ``runs`` GANs (vmapped over seeds); returns raw-generator and EMA samples
    (runs, 2500, 2) and the final metrics."""
    c = gan_toy.with_loss(gan_toy.get_config(), loss)
    c.train.num_steps, c.train.batch_size = steps, batch
    family = GANFamily(c, (2,))
    means, std = protocol_mixture(dataset)
    means_j = jnp.asarray(means, jnp.float32)

    def data(key):
        k1, k2 = jax.random.split(key)
        comp = jax.random.randint(k1, (batch,), 0, len(means))
        return means_j[comp] + std * jax.random.normal(k2, (batch, 2))

    def train_one(key):
        state = family.init(jax.random.fold_in(key, 0))

        def body(state, step):
            k = jax.random.fold_in(key, step + 1)
            state, m = family.train_step(state, {"x": data(jax.random.fold_in(k, 0))},
                                         jax.random.fold_in(k, 1))
            return state, (m["d_loss"], m["g_loss"])

        state, losses = jax.lax.scan(body, state, jnp.arange(steps))
        k_s = jax.random.fold_in(key, -1 % (2**31))
        raw = family.sample({"params": state.params["generator"],
                             "batch_stats": state.model_state["generator"]}, k_s, 2500)
        ema = family.sample(state.ema_params, k_s, 2500)
        return raw, ema, losses

    keys = jnp.stack([jax.random.key_data(jax.random.fold_in(jax.random.key(seed), r))
                      for r in range(runs)])
    fn = jax.jit(jax.vmap(lambda kd: train_one(jax.random.wrap_key_data(kd))))
    raw, ema, losses = jax.device_get(fn(keys))
    return np.asarray(raw), np.asarray(ema), np.asarray(losses[0]), np.asarray(losses[1]), c


def summarise(samples, dataset):
    means, std = protocol_mixture(dataset)
    covs = [metrics.mode_coverage(s, means, std) for s in samples]
    modes = np.array([c.modes_covered for c in covs], float)
    hq = np.array([100 * c.high_quality_fraction if np.all(np.isfinite(s)) else 0.0
                   for c, s in zip(covs, samples)])
    se = lambda v: float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0  # noqa
    return {"modes_mean": float(modes.mean()), "modes_se": se(modes),
            "hq_mean": float(hq.mean()), "hq_se": se(hq), "modes": modes.tolist(),
            "hq": hq.tolist(), "num_modes": len(means),
            "finite_runs": int(sum(np.all(np.isfinite(s)) for s in samples))}


def panel(samples, dataset, size=200):
    means, std = protocol_mixture(dataset)
    extent = 1.5 if dataset == "ring" else 5.5
    return viz.scatter_image(samples, size=size, extent=extent, radius=0,
                             log_density=mixture_log_prob(means, std))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--losses", default="minimax,non_saturating,wgan_gp,lsgan,hinge,wgan")
    p.add_argument("--datasets", default="ring,grid")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=RESULTS)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "gan_mode_collapse.json")
    result = {"protocol": "ring: 8 Gaussians radius 1 std 0.01; grid: 25 Gaussians means "
                          "{-4..4 step 2}^2 std 0.05; 2500 samples; high quality = within 3 "
                          "std of nearest mean; mode covered = nearest mean of >= 1 "
                          "high-quality sample",
              "players": "MLP G: z(2) -> 128 ReLU -> 128 ReLU -> 2; D: 2 -> 128 ReLU -> 128 "
                         "ReLU -> 1 (configs/gan_toy.py)",
              "steps": a.steps, "batch": a.batch, "runs": a.runs,
              "published": {k: {"ring": v[0], "grid": v[1]} for k, v in PUBLISHED.items()},
              "settings": {}, "results": {}}
    panels, first_runs = {}, {}
    for loss in a.losses.split(","):
        for dataset in a.datasets.split(","):
            t0 = time.time()
            raw, ema, d_loss, g_loss, c = run_group(loss, dataset, a.runs, a.steps, a.batch,
                                                    a.seed)
            entry = {"generator": summarise(raw, dataset), "ema_generator": summarise(ema, dataset),
                     "final_d_loss": d_loss[:, -100:].mean(1).tolist(),
                     "final_g_loss": g_loss[:, -100:].mean(1).tolist(),
                     "seconds": time.time() - t0}
            result["results"].setdefault(loss, {})[dataset] = entry
            result["settings"][loss] = {"n_critic": c.gan.n_critic, "d_optimizer": c.gan.d_optimizer,
                                        "d_lr": c.gan.d_learning_rate, "g_lr": c.optim.learning_rate,
                                        "d_betas": [c.gan.d_b1, c.gan.d_b2],
                                        "g_betas": [c.optim.b1, c.optim.b2],
                                        "ema_decay": c.optim.ema_decay}
            g = entry["generator"]
            print(f"{loss:15s} {dataset:5s} modes {g['modes_mean']:.1f} +- {g['modes_se']:.1f}"
                  f"/{g['num_modes']}  hq {g['hq_mean']:.1f} +- {g['hq_se']:.1f}%  "
                  f"runs {g['modes']}  ({entry['seconds']:.0f} s)", flush=True)
            panels[(loss, dataset)] = panel(raw[0], dataset)
            first_runs[f"{loss}_{dataset}"] = raw[0]
            np.savez_compressed(os.path.join(a.out, "gan_mode_collapse_run0.npz"), **first_runs)
            with open(path, "w") as f:
                json.dump(result, f, indent=1)
    # One picture: rows = losses, columns = datasets (first run's raw generator).
    rows = []
    for loss in a.losses.split(","):
        cells = [panels[(loss, d)] for d in a.datasets.split(",") if (loss, d) in panels]
        if cells:
            pad = ((2, 2), (2, 2)) + ((0, 0),) * (cells[0].ndim - 2)
            rows.append(np.concatenate([np.pad(x, pad, constant_values=128) for x in cells], 1))
    if rows:
        viz.save_png(np.concatenate(rows, 0), os.path.join(a.out, "gan_mode_collapse.png"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
