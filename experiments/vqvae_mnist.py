"""VQ-VAE on MNIST with an autoregressive transformer prior over its codes: codebook usage,
reconstructions, and decoded prior samples.

1. Trains the VQ-VAE of configs/vqvae_mnist.py (K = 64 codes of D = 16, EMA codebook,
   7 x 7 code grid) on ``test[:90%]`` of real MNIST through the generic loop.
2. Encodes the 1,000 held-out images ``test[90%:]``: reconstruction error, codebook
   perplexity and dead codes (codes no held-out position uses), and a picture of
   inputs over reconstructions.
3. Trains the causal transformer prior of configs/vqvae_prior_mnist.py on the frozen
   VQ-VAE's codes, reports the held-out code NLL (nats per image, bits per code), draws
   code grids (49 sequential steps) and decodes them; times the sampler.

Writes ``experiments/results/vqvae_mnist.json``, ``vqvae_mnist_reconstructions.png`` and
``vqvae_mnist_prior_samples.png``.

  python experiments/vqvae_mnist.py --data_dir=../shared/tfds --vq_steps=1500 \
      --prior_steps=1500
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
from configs import vqvae_mnist, vqvae_prior_mnist  # noqa: E402
from jaxgen import autoregressive as ar  # noqa: E402
from jaxgen import viz  # noqa: E402
from jaxgen.metrics.reference import load_split_images  # noqa: E402
from jaxgen.train import loop  # noqa: E402


def _common(c, args, steps):
    c.data.data_dir = args.data_dir
    c.train.num_steps = steps
    c.train.checkpoint_every = steps
    c.train.log_every = 50
    return c


def codebook_report(run, images: np.ndarray) -> dict:
    family, params = run.family, run.state.ema_params
    enc = jax.jit(family.encode_indices)
    idx = np.concatenate([np.asarray(enc(params, jnp.asarray(images[i:i + 100])))
                          for i in range(0, len(images), 100)])
    recon = np.concatenate([np.asarray(jax.jit(family.decode_indices)(
        params, jnp.asarray(idx[i:i + 100]))) for i in range(0, len(idx), 100)])
    counts = np.asarray(ar.code_counts(jnp.asarray(idx), family.num_codes))
    return {"indices": idx, "reconstructions": recon, "summary": {
        "reconstruction_mse": float(np.mean((recon - images) ** 2)),
        "codebook_size": family.num_codes, "perplexity": float(ar.perplexity(counts)),
        "dead_codes": int(ar.dead_codes(counts)),
        "codes_used": int(np.sum(counts > 0)),
        "code_counts": counts.astype(int).tolist(), "grid": list(family.grid_shape)}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "tfds"))
    p.add_argument("--vq_steps", type=int, default=1500)
    p.add_argument("--prior_steps", type=int, default=1500)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "vqvae_mnist"))
    p.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    images, _ = load_split_images("mnist", "test[90%:]", args.data_dir)
    results = {"eval_images": int(len(images)), "train_images": 9000}

    vq_dir = os.path.join(args.runs, "vqvae")
    t0 = time.perf_counter()
    loop.train(_common(vqvae_mnist.get_config(), args, args.vq_steps), vq_dir, quiet=True)
    vq_run = jaxgen.load(vq_dir)
    report = codebook_report(vq_run, images)
    results["vqvae"] = {"config": "configs/vqvae_mnist.py", "steps": args.vq_steps,
                        "train_seconds": round(time.perf_counter() - t0, 1),
                        **report["summary"]}
    rows = np.concatenate([images[:10], report["reconstructions"][:10], images[10:20],
                           report["reconstructions"][10:20]])
    recon_png = viz.save_grid(rows, os.path.join(args.out, "vqvae_mnist_reconstructions.png"),
                              nrow=10)
    results["vqvae"]["reconstructions_png"] = os.path.relpath(recon_png, ROOT)
    print(json.dumps({k: v for k, v in results["vqvae"].items() if k != "code_counts"}),
          flush=True)

    prior_dir = os.path.join(args.runs, "prior")
    pc = _common(vqvae_prior_mnist.get_config(), args, args.prior_steps)
    pc.prior.vqvae_workdir = vq_dir
    t0 = time.perf_counter()
    loop.train(pc, prior_dir, quiet=True)
    prun = jaxgen.load(prior_dir)
    train_s = time.perf_counter() - t0
    codes = jnp.asarray(report["indices"].reshape(len(images), -1))
    nll_fn = jax.jit(prun.family.nll)
    nll = np.concatenate([np.asarray(nll_fn(prun.state.ema_params, codes[i:i + 100]))
                          for i in range(0, len(codes), 100)])
    fn = jax.jit(prun.family.sample, static_argnums=2)
    key = jax.random.key(0)
    compiled = fn.lower(prun.state.ema_params, key, args.samples).compile()
    t0 = time.perf_counter()
    samples = np.asarray(jax.block_until_ready(compiled(prun.state.ema_params, key)))
    sample_s = time.perf_counter() - t0
    png = viz.save_grid(samples, os.path.join(args.out, "vqvae_mnist_prior_samples.png"),
                        nrow=8)
    seq_len = codes.shape[1]
    results["prior"] = {
        "config": "configs/vqvae_prior_mnist.py", "steps": args.prior_steps,
        "train_seconds": round(train_s, 1),
        "test_code_nll_nats": float(nll.mean()),
        "test_bits_per_code": float(nll.mean() / (seq_len * np.log(2))),
        "uniform_code_nll_nats": float(seq_len * np.log(vq_run.family.num_codes)),
        "sample_seconds_per_image": sample_s / args.samples, "sample_batch": args.samples,
        "samples_png": os.path.relpath(png, ROOT)}
    print(json.dumps(results["prior"]), flush=True)
    with open(os.path.join(args.out, "vqvae_mnist.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
