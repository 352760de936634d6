"""Test log-likelihood of VAE and IWAE on binarized MNIST (Burda et al. 2016, Table 1).

Trains the lectures' MLP VAE (784-400-20, configs/vae_mnist.py) on the ELBO (k = 1) and
on the IWAE bounds L_5 and L_50 (configs/iwae_mnist.py) through the generic loop, then
estimates -log p(x) of every model with the k = 5000 importance-weighted bound on the
held-out images, together with L_1 (the ELBO), L_5 and L_50 on the held-out images and
on as many training images (the gap between the two is the overfitting).

Binarization: training binarizes dynamically (a fresh x ~ Bernoulli((x + 1) / 2) every
step); evaluation binarizes once with the fixed key ``jaxgen.train.vae
.EVAL_BINARIZATION_SEED``, image i of the split with ``fold_in(key, i)``, so every model
is scored on the same binary images.

Here only MNIST's 10,000 test images exist: training uses ``test[:90%]`` and evaluation
``test[90%:]``. With the full dataset, ``--paper`` gives Burda et al.'s setting (train
on 'train', evaluate on all of 'test', 784-200-200-50 tanh, batch 20, 3,280 passes):

  python experiments/vae_nll.py --data_dir=../shared/tfds            # this repo's run
  python experiments/vae_nll.py --paper --data_dir=~/tensorflow_datasets

Writes ``experiments/results/vae_nll.json`` and the pictures ``vae_mnist_*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jaxgen  # noqa: E402
from configs import iwae_mnist, vae_mnist  # noqa: E402
from jaxgen.metrics.reference import load_split_images  # noqa: E402
from jaxgen.train import loop  # noqa: E402
from jaxgen.train import vae as vae_family  # noqa: E402

# Burda et al. (2016), Table 1, MNIST, one stochastic layer (784-200-200-50), test NLL
# estimated with k = 5000, full MNIST (60,000 training images, 3,280 passes).
PUBLISHED = {"vae": {"k=1": 86.76, "k=5": 86.47, "k=50": 86.35},
             "iwae": {"k=1": 86.76, "k=5": 85.54, "k=50": 84.78}}
BOUNDS = (1, 5, 50)


def model_config(name: str, args):
    arg = "paper" if args.paper else None
    k = {"vae": 1, "iwae5": 5, "iwae50": 50, "vae_long": 1, "iwae5_long": 5, "vae_2d": 1}[name]
    c = (vae_mnist if k == 1 else iwae_mnist).get_config(arg)
    c.data.data_dir = args.data_dir
    c.vae.num_samples = k
    c.vae.eval_num_samples = 0
    if not args.paper:
        passes = args.long_passes if name.endswith("_long") else args.passes
        c.train.num_steps = max(1, round(passes * args.train_images / c.train.batch_size))
        c.train.checkpoint_every = c.train.num_steps
        c.train.log_every = min(100, c.train.num_steps)
    if name == "vae_2d":
        c.vae.latent_dim = 2
    return c


def split_images(config, split: str, n: int, family):
    """The first n images of ``split`` in order, binarized with the fixed evaluation key
    (image i with fold_in(key, i))."""
    images, _ = load_split_images(config.data.name, split, config.data.data_dir, max_samples=n)
    return images, np.asarray(jax.jit(family.eval_input)(images))


def bounds(run, x, rng, ks, batch: int = 100, chunk: int = 100) -> dict:
    """Mean L_k over the images x (already binarized) for every k in ks, in nats."""
    fam, params = run.family, run.state.ema_params
    fns = {k: jax.jit(lambda p, xb, r, k=k: fam.log_likelihood(p, xb, r, k, min(chunk, k)))
           for k in ks}
    out = {}
    for k in ks:
        vals = [np.asarray(fns[k](params, x[i:i + batch], jax.random.fold_in(rng, i)))
                for i in range(0, len(x), batch)]
        out[f"k={k}"] = float(np.mean(np.concatenate(vals)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "tfds"))
    p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "vae_nll"))
    p.add_argument("--models", default="vae,iwae5,iwae50,vae_long,vae_2d")
    p.add_argument("--passes", type=float, default=20, help="training passes of every model "
                   "in the comparison (ignored with --paper)")
    p.add_argument("--long_passes", type=float, default=100, help="passes of the '*_long' "
                   "models")
    p.add_argument("--train_images", type=int, default=9000)
    p.add_argument("--eval_k", type=int, default=5000)
    p.add_argument("--eval_images", type=int, default=1000)
    p.add_argument("--paper", action="store_true", help="Burda et al.'s full-MNIST setting")
    p.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
    args = p.parse_args()
    if args.paper:
        args.train_images = vae_mnist.MNIST_TRAIN_IMAGES
    suffix = "_paper" if args.paper else ""
    json_path = os.path.join(args.out, f"vae_nll{suffix}.json")
    results = {}
    if os.path.exists(json_path):
        with open(json_path) as f:
            results = json.load(f).get("models", {})
    rng = jax.random.key(20160601)
    for name in args.models.split(","):
        config = model_config(name, args)
        workdir = os.path.join(args.workdir + suffix, name)
        t0 = time.time()
        loop.train(config, workdir, quiet=True)
        train_s = time.time() - t0
        run = jaxgen.load(workdir)
        t0 = time.time()
        images, test = split_images(config, config.data.eval_split, args.eval_images, run.family)
        _, train = split_images(config, config.data.split, args.eval_images, run.family)
        entry = {"train_k": config.vae.num_samples, "steps": config.train.num_steps,
                 "batch_size": config.train.batch_size,
                 "passes": config.train.num_steps * config.train.batch_size / args.train_images,
                 "train_wall_s": round(train_s, 1),
                 "architecture": f"{config.model.name} hidden={tuple(config.vae.hidden_dims)} "
                                 f"latent={config.vae.latent_dim} {config.vae.activation}",
                 "test_bounds": bounds(run, test, rng, BOUNDS),
                 "train_bounds": bounds(run, train, rng, BOUNDS)}
        if name != "vae_2d":
            entry["test_nll"] = -bounds(run, test, jax.random.fold_in(rng, 1),
                                        (args.eval_k,))[f"k={args.eval_k}"]
            entry["test_bits_per_dim"] = entry["test_nll"] / (784 * np.log(2.0))
        entry["eval_wall_s"] = round(time.time() - t0, 1)
        results[name] = entry
        print(name, json.dumps(entry), flush=True)
        if name in ("vae", "vae_2d", "vae_long"):
            tag = {"vae": "", "vae_2d": "_2d", "vae_long": "_long"}[name]
            vae_family.save_pictures(run.family, run.state.ema_params, images, args.out,
                                     jax.random.key(0), prefix=f"vae_mnist{tag}{suffix}_")
        summary = {
            "what": "MNIST test NLL (nats) of VAE/IWAE, IWAE k-sample estimates",
            "train_split": config.data.split, "eval_split": config.data.eval_split,
            "eval_images": len(test), "eval_k": args.eval_k,
            "binarization": ("training: dynamic, Bernoulli((x+1)/2) per step; evaluation: "
                             f"fixed, image i of the split with fold_in(key("
                             f"{vae_family.EVAL_BINARIZATION_SEED}), i)"),
            "parameters": "EMA parameters of the run",
            "published_burda2016_table1": PUBLISHED,
            "device": jax.devices()[0].device_kind, "models": results}
        os.makedirs(args.out, exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(summary, f, indent=2)
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
