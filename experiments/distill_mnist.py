"""Progressive distillation of a trained MNIST rectified-flow teacher (1-2 halvings).

The teacher is a jaxgen diffusion run (default ``runs/rf_mnist_small``: rectified flow,
'velocity' prediction, (32, 64) UNet; see experiments/README.md, "Sample quality vs
number of model evaluations"). Each round trains a copy of the teacher's UNet, started
from the teacher's EMA parameters, to take N DDIM (= Euler on rectified flow) steps where
the teacher takes 2N (Salimans & Ho 2022, Alg. 2; the student keeps the teacher's
'velocity' parameterisation, from which x0_hat = x_t - t u is well conditioned at every
t, as Salimans & Ho require of a few-step student). Data: the run's training split.
Quality: FD on the MNIST classifier features (``--feature-net``) of ``--n`` samples
against all of ``--real-split``, as in quality_vs_steps.py.

  python experiments/distill_mnist.py --checkpoint runs/rf_mnist_small \\
      --data-dir ../shared/tfds --teacher-steps 16 --rounds 1 --round-steps 300 \\
      --feature-net runs/feature_nets/classifier-mnist-bb46560ee711c313.msgpack

Writes ``experiments/results/distill_mnist.json`` and ``distill_mnist.png`` (rows:
teacher at 2N, teacher at N, student at N, ... from the same noise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxgen  # noqa: E402
from jaxgen import diffusion, metrics, viz  # noqa: E402
from jaxgen.data import sources  # noqa: E402
from jaxgen.data.pipeline import preprocess  # noqa: E402
from jaxgen.train import distill as td  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="runs/rf_mnist_small")
    p.add_argument("--data-dir", default="../shared/tfds")
    p.add_argument("--real-split", default="test[90%:]")
    p.add_argument("--feature-net", default="")
    p.add_argument("--teacher-steps", type=int, default=16)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--round-steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sample-batch", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def main():
    args = parse()
    run = jaxgen.load(args.checkpoint)
    cfg, family = run.config, run.family
    process, prediction = family.process, family.prediction
    src = sources.make_source(cfg.data.name, cfg.data.split, args.data_dir)
    train_x, _ = src.get_batch(np.arange(len(src)))
    train_x = preprocess(train_x)
    rng = jax.random.key(args.seed)

    def data_fn(i):  # a pure function of the step: epoch-wise permutations
        per_epoch = len(train_x) // args.batch
        perm = np.random.default_rng([args.seed, i // per_epoch]).permutation(len(train_x))
        j = i % per_epoch
        return train_x[perm[j * args.batch:(j + 1) * args.batch]]

    teacher_params = run.state.ema_params
    teacher_fn = lambda p, x, t: family.denoiser(p)(x, t)
    features = family.time_features
    apply = td.module_fn(family.model, features)

    fd_of = None
    if args.feature_net:
        ext = metrics.load_extractor(args.feature_net)
        ref = metrics.reference_stats(cfg.data.name, args.real_split, ext,
                                      data_dir=args.data_dir)
        fd_of = lambda x: metrics.frechet_distance(
            metrics.stats_from_features(metrics.extract_features(ext, x), ext.identifier),
            ref).value
    shape = tuple(family.data_shape)
    noise = [diffusion.prior_noise(process, jax.random.fold_in(rng, 10 + b),
                                   (args.sample_batch,) + shape)
             for b in range(-(-args.n // args.sample_batch))]

    def draw(fn, params, grid):
        sampler = jax.jit(lambda p, x: diffusion.ddim_sample(
            lambda x, t: fn(p, x, t), process, x, None, prediction=prediction,
            timesteps=grid))
        t0 = time.time()
        x = np.concatenate([np.asarray(sampler(params, z)) for z in noise])[:args.n]
        return x, time.time() - t0

    result = {"args": vars(args), "checkpoint_step": run.step, "rows": []}
    pictures = []

    def evaluate(label, fn, params, grid):
        x, wall = draw(fn, params, grid)
        row = {"sampler": label, "steps": len(grid) - 1, "sample_s": wall}
        if fd_of is not None:
            row["fd"] = float(fd_of(x))
        result["rows"].append(row)
        pictures.append((label, x[:16]))
        print(row, flush=True)

    grid = np.asarray(process.timesteps(args.teacher_steps))
    evaluate(f"teacher {args.teacher_steps}", teacher_fn, teacher_params, grid)

    def on_round(r):
        evaluate(f"teacher {r.num_steps}", teacher_fn, teacher_params, r.timesteps)
        evaluate(f"student {r.num_steps}", apply, r.params, r.timesteps)
        result["rows"][-1].update(train_s=r.seconds, final_loss=float(np.mean(r.losses[-50:])),
                                  first_loss=float(np.mean(r.losses[:10])))

    td.progressive_distillation(
        teacher_fn, teacher_params, family.model, process, data_fn, jax.random.fold_in(rng, 1),
        teacher_steps=args.teacher_steps, rounds=args.rounds, steps_per_round=args.round_steps,
        batch_size=args.batch, student_prediction=prediction, teacher_prediction=prediction,
        optimizer=optax.adam(args.lr), student_params=teacher_params, features=features,
        log_every=25, on_round=on_round)

    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "distill_mnist.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    images = np.concatenate([x for _, x in pictures])
    path = viz.save_grid(images, os.path.join(RESULTS, "distill_mnist.png"), nrow=16)
    print("rows of", path, ":", [label for label, _ in pictures])


if __name__ == "__main__":
    main()
