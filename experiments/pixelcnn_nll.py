"""Exact test NLL of PixelCNNs on binarized MNIST, beside the published figure.

Trains the masked-convolution PixelCNN (configs/pixelcnn_mnist.py) and/or the gated
PixelCNN (configs/gated_pixelcnn_mnist.py) through the generic loop on ``test[:90%]`` of
real MNIST, then computes the exact -log p(x) of every one of the 1,000 held-out images
``test[90%:]`` (nats per image and bits/dim), draws samples and times the sampler (one
compiled ``lax.fori_loop`` over the 784 pixels), and writes
``experiments/results/pixelcnn_nll.json`` and ``pixelcnn_mnist_<model>_samples.png``.

Binarization: training binarizes dynamically (a fresh x ~ Bernoulli((x + 1) / 2) every
step); evaluation binarizes the 1,000 images once with the fixed key
``jaxgen.train.autoregressive.EVAL_BINARIZATION_SEED`` (image i with ``fold_in(key, i)``).

Published: PixelCNN 81.30 nats (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
Recurrent Neural Networks", Table 4) on the fixed binarization of Salakhutdinov & Murray
(2008), trained on 50,000 (+10,000 validation) images to convergence with a much larger
network. Here: 9,000 images, minutes on a shared 2-core CPU, and a different (stochastic)
binarization of the test images: the numbers sit beside the paper's, they do not
reproduce it.

  python experiments/pixelcnn_nll.py --data_dir=../shared/tfds --models=pixelcnn \
      --steps=1500 --batch_size=32 --channels=32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jaxgen  # noqa: E402
from configs import gated_pixelcnn_mnist, pixelcnn_mnist  # noqa: E402
from jaxgen import viz  # noqa: E402
from jaxgen.metrics.reference import load_split_images  # noqa: E402
from jaxgen.train import loop  # noqa: E402

PUBLISHED = {"model": "PixelCNN", "nll_nats": 81.30,
             "source": "van den Oord, Kalchbrenner & Kavukcuoglu 2016, Pixel Recurrent "
                       "Neural Networks, Table 4 (binarized MNIST, 50k training images)"}
CONFIGS = {"pixelcnn": pixelcnn_mnist, "gated_pixelcnn": gated_pixelcnn_mnist}


def model_config(name: str, args):
    c = CONFIGS[name].get_config("256" if args.levels == 256 else None)
    c.data.data_dir = args.data_dir
    c.train.num_steps = args.steps
    c.train.batch_size = args.batch_size
    c.train.checkpoint_every = args.steps
    c.train.log_every = 50
    c.ar.channels = args.channels
    c.ar.num_layers = args.layers
    c.ar.head_channels = 2 * args.channels
    c.optim.learning_rate = args.lr
    c.sampler.num_samples = args.samples
    return c


def exact_nll(run, images: np.ndarray, batch: int = 100) -> np.ndarray:
    """-log p(x) in nats of every image (binarized once, image i with fold_in(key, i))."""
    family = run.family
    values = np.asarray(family.discretize(jnp.asarray(images)))
    fn = jax.jit(family.nll)
    return np.concatenate([np.asarray(fn(run.state.ema_params, jnp.asarray(
        values[i:i + batch]))) for i in range(0, len(values), batch)])


def timed_samples(run, num: int, seed: int = 0):
    """(samples, compile seconds, sampling seconds) for ``num`` samples in one call."""
    fn = jax.jit(run.family.sample, static_argnums=2)
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    compiled = fn.lower(run.state.ema_params, key, num).compile()
    t1 = time.perf_counter()
    samples = np.asarray(jax.block_until_ready(compiled(run.state.ema_params, key)))
    return samples, t1 - t0, time.perf_counter() - t1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "tfds"))
    p.add_argument("--models", default="pixelcnn,gated_pixelcnn")
    p.add_argument("--levels", type=int, default=2, choices=(2, 256))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "pixelcnn_nll"))
    p.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    out_json = os.path.join(args.out, "pixelcnn_nll.json")
    results = json.load(open(out_json)) if os.path.exists(out_json) else {}
    results["published"] = PUBLISHED
    images, _ = load_split_images("mnist", "test[90%:]", args.data_dir)
    for name in args.models.split(","):
        tag = name if args.levels == 2 else f"{name}_256"
        config = model_config(name, args)
        workdir = os.path.join(args.runs, tag)
        t0 = time.perf_counter()
        loop.train(config, workdir, quiet=True)
        train_s = time.perf_counter() - t0
        run = jaxgen.load(workdir)
        nll = exact_nll(run, images)
        samples, compile_s, sample_s = timed_samples(run, args.samples)
        png = os.path.join(args.out, f"pixelcnn_mnist_{tag}_samples.png")
        viz.save_grid(samples, png, nrow=int(np.ceil(np.sqrt(args.samples))))
        num_params = sum(x.size for x in jax.tree.leaves(run.state.ema_params))
        results[tag] = {
            "config": f"configs/{name}_mnist.py" + (":256" if args.levels == 256 else ""),
            "train_images": 9000, "eval_images": int(len(nll)), "levels": args.levels,
            "steps": args.steps, "batch_size": args.batch_size, "channels": args.channels,
            "layers": args.layers, "params": int(num_params),
            "train_seconds": round(train_s, 1),
            "test_nll_nats": float(nll.mean()), "test_nll_sem": float(nll.std() / np.sqrt(
                len(nll))), "test_bits_per_dim": float(nll.mean() / (784 * np.log(2))),
            "sample_seconds_per_image": sample_s / args.samples,
            "sample_batch": args.samples, "sampler_compile_seconds": compile_s,
            "samples_png": os.path.relpath(png, ROOT),
        }
        print(json.dumps({tag: results[tag]}, indent=1), flush=True)
        with open(out_json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
