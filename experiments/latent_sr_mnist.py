"""Results of the KL autoencoder, latent diffusion and super-resolution runs on MNIST.

Reads trained runs (see experiments/README.md for the launch lines) and writes into
experiments/results/:

* ``autoencoder_mnist.json`` + ``autoencoder_mnist_reconstructions.png``: reconstruction
  MSE / PSNR / KL on the held-out ``test[90%:]`` (all 1000 images), the latent scale
  factor; rows of inputs, each followed by a row of reconstructions;
* ``ldm_mnist.json`` + ``ldm_mnist_samples.png``: 100 decoded latent-diffusion samples;
* ``sr_mnist.json`` + ``sr_mnist.png``: PSNR of the diffusion super-resolution
  (14x14 -> 28x28) of held-out digits against the ground truth, next to nearest and
  bicubic upsampling of the same low-res input; rows of low-res (shown nearest-upsampled)
  | super-resolved | ground truth.

  python experiments/latent_sr_mnist.py --autoencoder=runs/autoencoder_mnist \
      --ldm=runs/ldm_mnist --sr=runs/sr_mnist
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxgen  # noqa: E402
from jaxgen import data, viz  # noqa: E402
from jaxgen.train import conditioning, loop  # noqa: E402
from jaxgen.train.autoencoder import first_images  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _write(name: str, record: dict) -> None:
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record, indent=2))
    print("wrote", path)


def _eval_pipeline(run, batch_size: int):
    source = data.make_source(run.config.data.name, run.config.data.eval_split,
                              run.config.data.data_dir)
    return data.Pipeline(source, batch_size, run.config.seed), len(source)


def autoencoder(workdir: str) -> None:
    run = jaxgen.load(workdir)
    pipeline, n = _eval_pipeline(run, 200)
    metrics = run.evaluate(pipeline, n // 200)       # every held-out image once
    images = first_images(run.config.data, run.config.data.eval_split, 20)
    recon = np.asarray(jax.jit(run.family.reconstruct)(run.state.ema_params, images))
    rows = np.concatenate([images[:10], recon[:10], images[10:], recon[10:]])
    viz.save_grid(rows, os.path.join(RESULTS, "autoencoder_mnist_reconstructions.png"), nrow=10)
    scale_file = os.path.join(workdir, "latent_scale.json")
    scale = json.load(open(scale_file)) if os.path.exists(scale_file) else None
    a = run.config.autoencoder
    _write("autoencoder_mnist.json", {
        "workdir": workdir, "step": run.step, "eval_split": run.config.data.eval_split,
        "eval_images": (n // 200) * 200, "latent_shape": list(run.family.latent_shape),
        "channels": list(a.channels), "kl_weight": a.kl_weight,
        "disc_weight": a.disc_weight, "reconstruction": a.reconstruction,
        "metrics_posterior_mean": metrics,
        "scale_factor_from_training_images": scale})


def ldm(workdir: str) -> None:
    run = jaxgen.load(workdir)
    start = time.perf_counter()
    samples = run.sample(loop.keys(run.config.seed)["sample"], 100)
    seconds = time.perf_counter() - start
    viz.save_grid(samples, os.path.join(RESULTS, "ldm_mnist_samples.png"), nrow=10)
    s = run.config.sampler
    _write("ldm_mnist.json", {
        "workdir": workdir, "step": run.step,
        "autoencoder_workdir": run.config.latent.autoencoder_workdir,
        "autoencoder_step": run.family.latent.step,
        "latent_shape": list(run.family.model_shape),
        "scale_factor": run.family.latent.scale_factor,
        "process": run.config.diffusion.process, "prediction": run.config.diffusion.prediction,
        "sampler": f"{s.method} {s.num_steps} steps, clip_x0={s.clip_x0}",
        "unet_block_channels": list(run.config.model.block_channels),
        "samples": 100, "sampling_seconds_incl_compile": round(seconds, 1),
        "sample_range": [float(samples.min()), float(samples.max())]})


def sr(workdir: str, num: int) -> None:
    run = jaxgen.load(workdir)
    pipeline, n = _eval_pipeline(run, 100)
    batches = min(num, n) // 100
    metrics = run.evaluate(pipeline, batches)
    images = first_images(run.config.data, run.config.data.eval_split, 20)
    conditioning.save_sr_picture(run.family, run.state.ema_params, images,
                                 os.path.join(RESULTS, "sr_mnist.png"), jax.random.key(0))
    s = run.config.sampler
    _write("sr_mnist.json", {
        "workdir": workdir, "step": run.step, "eval_split": run.config.data.eval_split,
        "eval_images": batches * 100, "low_res_size": run.config.diffusion.low_res_size,
        "sampler": f"{s.method} {s.num_steps} steps",
        "unet_block_channels": list(run.config.model.block_channels),
        "psnr_db": {k: metrics[k] for k in ("psnr_sr", "psnr_bicubic", "psnr_nearest")},
        "denoising_loss": metrics["loss"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autoencoder", default="")
    parser.add_argument("--ldm", default="")
    parser.add_argument("--sr", default="")
    parser.add_argument("--sr_images", type=int, default=300,
                        help="held-out images for the SR PSNR (multiples of 100)")
    args = parser.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    if args.autoencoder:
        autoencoder(args.autoencoder)
    if args.ldm:
        ldm(args.ldm)
    if args.sr:
        sr(args.sr, args.sr_images)


if __name__ == "__main__":
    main()
