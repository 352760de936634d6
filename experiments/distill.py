"""Few-step distillation on a 2-D Gaussian mixture: quality vs number of steps.

Teachers (rectified flow, 'v' prediction, deterministic DDIM = Euler on this process):
  - exact: the Bayes-optimal denoiser of the mixture (``analytic.exact_denoiser``), a
    perfectly trained network, so its DDIM error is discretisation error only;
  - mlp (``--mlp-teacher``): a ``nets.MLP`` trained by the usual denoising regression.
Students:
  - progressive distillation (Salimans & Ho 2022, Alg. 2), 64 -> 32 -> ... -> 1 steps,
    one student per halving, each initialised from its teacher (the first student of the
    exact teacher from scratch, trained longer);
  - consistency distillation (Song et al. 2023, Alg. 2) from the exact teacher with Heun
    steps on an N-point grid, sampled in 1 and 2 steps (Alg. 1).

Statistic: sliced Wasserstein SW_2 (``metrics.lowdim``) between ``--n`` samples and a
fresh data sample of the same size, averaged over ``--pairs`` independent pairs (fresh
noise and fresh data each time); floor: the same between two fresh data samples. Also
SW to the 64-step teacher's samples (same pairing) and ``mode_coverage`` (3-std discs).

  python experiments/distill.py                  # exact teacher, 4-12 min on 2 shared cores
  python experiments/distill.py --mlp-teacher    # also the trained-MLP teacher

Writes ``experiments/results/distill.json`` (``distill_<data>.json`` for other data) and
``distill.png`` (samples per number of steps, one row per sampler).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen import diffusion, nets  # noqa: E402
from jaxgen.diffusion import analytic, distill  # noqa: E402
from jaxgen.metrics.lowdim import mode_coverage, sliced_wasserstein  # noqa: E402
from jaxgen.train import distill as td  # noqa: E402
from jaxgen.train.state import TrainState  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PROC = diffusion.RectifiedFlow()


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="grid9", choices=analytic.TOY_MIXTURES)
    p.add_argument("--teacher-steps", type=int, default=64)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--first-round-steps", type=int, default=3000)
    p.add_argument("--round-steps", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cd-steps", type=int, default=4000)
    p.add_argument("--cd-points", type=int, default=18)
    p.add_argument("--cd-ema", type=float, default=0.95)
    p.add_argument("--cd-t-min", type=float, default=1e-3)
    p.add_argument("--cd-tau", type=float, default=0.5, help="2nd time of 2-step CM sampling")
    p.add_argument("--mlp-teacher", action="store_true")
    p.add_argument("--teacher-train-steps", type=int, default=6000)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def train_mlp_teacher(mix, module, args, rng):
    """The usual denoising regression ('v' target, uniform t), Adam + EMA 0.999."""
    tx = optax.adam(args.lr)
    features = td.time_features(PROC)
    x = mix.sample(jax.random.key(0), 1)
    params = module.init(jax.random.fold_in(rng, 1), x, features(jnp.ones((1,))))["params"]
    state = TrainState.create(params, tx)

    @jax.jit
    def step(state, i):
        key = jax.random.fold_in(rng, i)
        x0 = mix.sample(jax.random.fold_in(key, 0), args.batch)

        def loss(p):
            fn = lambda x, t: module.apply({"params": p}, x, features(t))
            return jnp.mean(diffusion.denoising_loss(fn, PROC, x0, jax.random.fold_in(key, 1),
                                                     prediction="v"))

        value, grads = jax.value_and_grad(loss)(state.params)
        return state.apply_gradients(grads, tx, 0.999), value

    for i in range(args.teacher_train_steps):
        state, value = step(state, i)
        if (i + 1) % 1000 == 0:
            print(f"[MLP teacher] step {i + 1} loss {float(value):.4f}", flush=True)
    return state.ema_params


class Evaluator:
    """SW to fresh data, SW to the reference teacher, mode coverage; ``pairs`` draws."""

    def __init__(self, mix, args, reference):
        self.mix, self.n, self.pairs = mix, args.n, args.pairs
        self.data = [mix.sample(jax.random.key(1000 + k), self.n) for k in range(self.pairs)]
        self.reference = reference   # sampler(seed) of the 64-step exact teacher

    def noise(self, k):
        return diffusion.prior_noise(PROC, jax.random.key(2000 + k), (self.n, 2))

    def __call__(self, sampler):
        xs = [np.asarray(sampler(self.noise(k), k)) for k in range(self.pairs)]
        sw = [sliced_wasserstein(x, d) for x, d in zip(xs, self.data)]
        ref = [sliced_wasserstein(x, self.reference(k)) for k, x in enumerate(xs)]
        mc = mode_coverage(xs[0], self.mix.means, self.mix.stds)
        return {"sw_data": float(np.mean(sw)), "sw_data_std": float(np.std(sw)),
                "sw_teacher64": float(np.mean(ref)), "modes": mc.modes_covered,
                "high_quality": mc.high_quality_fraction}, xs[0]


def main():
    args = parse()
    mix = analytic.toy_mixture_2d(args.data)
    exact = analytic.exact_denoiser(mix, PROC, "v")
    rng = jax.random.key(args.seed)
    draw = jax.jit(lambda k: mix.sample(k, args.batch))
    data_fn = lambda i: draw(jax.random.fold_in(jax.random.fold_in(rng, 7), i))
    module = nets.MLP(out_dim=2, hidden_dim=args.hidden, num_layers=args.layers)
    steps_list = [args.teacher_steps // 2 ** k for k in range(args.rounds + 1)]

    def ddim(model_fn, grid):
        return jax.jit(lambda x, k: diffusion.ddim_sample(model_fn, PROC, x, None,
                                                          prediction="v", timesteps=grid))

    ref64 = ddim(exact, PROC.timesteps(args.teacher_steps))
    ref_noise = [diffusion.prior_noise(PROC, jax.random.key(3000 + k), (args.n, 2))
                 for k in range(args.pairs)]
    ref_samples = [np.asarray(ref64(x, k)) for k, x in enumerate(ref_noise)]
    ev = Evaluator(mix, args, lambda k: ref_samples[k])
    floor = [sliced_wasserstein(mix.sample(jax.random.key(4000 + k), args.n), ev.data[k])
             for k in range(args.pairs)]
    result = {"args": vars(args), "platform": platform.platform(),
              "floor_sw": {"mean": float(np.mean(floor)), "std": float(np.std(floor))},
              "rows": {}, "seconds": {}}
    pictures = {}

    def record(row, steps, sampler):
        stats, x = ev(sampler)
        result["rows"].setdefault(row, {})[str(steps)] = stats
        pictures.setdefault(row, {})[steps] = x
        print(f"{row:>24s} {steps:3d} steps: SW data {stats['sw_data']:.4f} "
              f"SW teacher64 {stats['sw_teacher64']:.4f} modes {stats['modes']} "
              f"hq {100 * stats['high_quality']:.1f}%", flush=True)

    for n in steps_list:
        record("teacher (exact) DDIM", n, ddim(exact, PROC.timesteps(n)))

    def distil(row, teacher_fn, teacher_params, student_params, first_steps):
        start = time.time()
        rounds = td.progressive_distillation(
            teacher_fn, teacher_params, module, PROC, data_fn, jax.random.fold_in(rng, 11),
            teacher_steps=args.teacher_steps, rounds=args.rounds,
            steps_per_round=[first_steps] + [args.round_steps] * (args.rounds - 1),
            batch_size=args.batch, optimizer=optax.adam(args.lr),
            student_params=student_params, log_every=500)
        result["seconds"][row] = time.time() - start
        for r in rounds:
            apply = td.module_fn(module, td.time_features(PROC))
            record(row, r.num_steps, ddim(lambda x, t, p=r.params: apply(p, x, t), r.timesteps))
            result["rows"][row][str(r.num_steps)]["final_loss"] = float(np.mean(r.losses[-100:]))

    distil("PD student (exact)", lambda p, x, t: exact(x, t), None, None,
           args.first_round_steps)

    start = time.time()
    state, losses, ts = td.consistency_distillation(
        lambda p, x, t: exact(x, t), None, module, PROC, data_fn, jax.random.fold_in(rng, 13),
        num_points=args.cd_points, steps=args.cd_steps, batch_size=args.batch,
        solver="heun", ema_decay=args.cd_ema, sigma_data=1.0, t_min=args.cd_t_min,
        optimizer=optax.adam(args.lr), log_every=1000)
    result["seconds"]["CD student (exact)"] = time.time() - start
    f = td.consistency_model_fn(module, PROC, t_min=args.cd_t_min, sigma_data=1.0)
    for taus in ([1.0], [1.0, args.cd_tau]):
        record("CD student (exact)", len(taus), jax.jit(
            lambda x, k, taus=taus: distill.consistency_sample(
                lambda x, t: f(state.ema_params, x, t), PROC, x, jax.random.key(5000 + k),
                timesteps=taus, t_min=args.cd_t_min)))

    if args.mlp_teacher:
        start = time.time()
        params = train_mlp_teacher(mix, module, args, jax.random.fold_in(rng, 17))
        result["seconds"]["MLP teacher training"] = time.time() - start
        apply = td.module_fn(module, td.time_features(PROC))
        for n in steps_list:
            record("teacher (MLP) DDIM", n, ddim(lambda x, t: apply(params, x, t),
                                                 PROC.timesteps(n)))
        distil("PD student (MLP)", apply, params, params, args.round_steps)

    os.makedirs(RESULTS, exist_ok=True)
    stem = "distill" if args.data == "grid9" else f"distill_{args.data}"
    with open(os.path.join(RESULTS, stem + ".json"), "w") as fh:
        json.dump(result, fh, indent=1)
    plot(pictures, mix, steps_list, os.path.join(RESULTS, stem + ".png"), result)
    print_table(result, steps_list)


def plot(pictures, mix, steps_list, path, result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(pictures)
    fig, axes = plt.subplots(len(rows), len(steps_list),
                             figsize=(1.9 * len(steps_list), 2.0 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, n in enumerate(steps_list):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlim(-2.2, 2.2), ax.set_ylim(-2.2, 2.2)
            if n in pictures[row]:
                x = pictures[row][n]
                ax.scatter(x[:2000, 0], x[:2000, 1], s=1, c="k", alpha=0.4)
                sw = result["rows"][row][str(n)]["sw_data"]
                ax.set_title(f"{n} step{'s' if n > 1 else ''}, SW {sw:.3f}", fontsize=7)
            else:
                ax.axis("off")
        first = min(j for j, n in enumerate(steps_list) if n in pictures[row])
        axes[i, first].set_ylabel(row, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def print_table(result, steps_list):
    rows = result["rows"]
    print(f"\nSW_2 to data (x 1e-2; floor {100 * result['floor_sw']['mean']:.2f} +- "
          f"{100 * result['floor_sw']['std']:.2f}) / high-quality %:")
    print("| sampler | " + " | ".join(str(n) for n in steps_list) + " |")
    print("| --- |" + " ---: |" * len(steps_list))
    for row, cells in rows.items():
        vals = []
        for n in steps_list:
            c = cells.get(str(n))
            vals.append("" if c is None else
                        f"{100 * c['sw_data']:.2f} / {100 * c['high_quality']:.0f}")
        print(f"| {row} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main()
