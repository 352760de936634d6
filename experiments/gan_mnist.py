"""DCGAN-family runs on real MNIST, one per loss, through the generic loop; then pictures
and numbers from each run's EMA generator:

* ``results/gan_mnist_<run>.png``: 100 samples (10x10); for the conditional run one class
  per column;
* ``results/gan_mnist_<run>_interp.png``: 8 rows of latent interpolation
  z_t = t z_0 + (1 - t) z_1, t = 1 .. 0 (Radford et al. 2016, sec. 6.1);
* ``results/gan_mnist.json``: final losses, FD / KID / precision / recall on the MNIST
  classifier's features (experiments/train_classifier.py) against test[90%:], and the
  classifier's digit histogram of 1,000 samples (classes present, KL to uniform, and for
  the conditional run the accuracy of the requested class).

Usage:
  .venv/bin/python experiments/gan_mnist.py --data_dir=../shared/tfds --steps 2000
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from jaxgen import gan, metrics, viz  # noqa: E402
from jaxgen.train import evaluation, loop  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
# run name -> (config module, overrides)
RUNS = {
    "dcgan": ("dcgan_mnist", {}),
    "minimax": ("dcgan_mnist", {"gan.loss": "minimax"}),
    "lsgan": ("lsgan_mnist", {}),
    "hinge": ("hinge_mnist", {}),
    "hinge_sn": ("hinge_mnist", {"gan.d_norm": "spectral"}),  # SNGAN's critic
    "wgan_gp": ("wgan_gp_mnist", {}),
    "wgan": ("wgan_mnist", {}),
    "cgan": ("cgan_mnist", {}),
}


def classifier_logits(path):
    """(images -> logits) of the MNIST classifier file."""
    from jaxgen.nets.classifier import Classifier
    ext = metrics.load_extractor(path)
    cfg = ext.config
    model = Classifier(num_classes=cfg["num_classes"], channels=tuple(cfg["channels"]),
                       feature_dim=cfg["feature_dim"])
    fn = jax.jit(lambda x: model.apply({"params": ext.params}, x)[0])
    return lambda x: np.concatenate([np.asarray(fn(x[i:i + 250])) for i in range(0, len(x), 250)])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data_dir", default="../shared/tfds")
    p.add_argument("--runs", default="dcgan,minimax,lsgan,hinge,wgan_gp,cgan")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--wgan_gp_steps", type=int, default=0, help="0: steps // 3 (n_critic=5 "
                   "and the penalty's double backward make its steps ~4x dearer)")
    p.add_argument("--workdir", default="runs/gan_mnist")
    p.add_argument("--out", default=RESULTS)
    a = p.parse_args()
    feature_net = (sorted(glob.glob("runs/feature_nets/classifier-mnist-*.msgpack")) or [""])[0]
    logits_fn = classifier_logits(feature_net) if feature_net else None
    path = os.path.join(a.out, "gan_mnist.json")
    result = json.load(open(path)) if os.path.exists(path) else {}
    for name in a.runs.split(","):
        module, overrides = RUNS[name]
        c = importlib.import_module(f"configs.{module}").get_config()
        for field, value in overrides.items():
            section, key = field.split(".")
            c[section][key] = value
        c.data.data_dir = a.data_dir
        steps = (a.wgan_gp_steps or a.steps // 3) if name == "wgan_gp" else a.steps
        c.train.num_steps = steps
        c.train.checkpoint_every = steps
        c.train.sample_every = 0
        c.train.log_every = 50
        c.eval.num_samples = 1000 if feature_net else 0
        c.eval.feature_net = feature_net
        workdir = os.path.join(a.workdir, name)
        t0 = time.time()
        state = loop.train(c, workdir, quiet=True)
        train_s = time.time() - t0
        family = loop.make_family(c, (28, 28, 1))
        params = state.ema_params
        key = jax.random.key(123)
        sample = jax.jit(family.sample, static_argnums=2)
        viz.save_grid(np.asarray(sample(params, key, 100)),
                      os.path.join(a.out, f"gan_mnist_{name}.png"), nrow=10)
        z = family.latents(jax.random.key(7), 16)
        zs = gan.interpolate_latents(z[:8], z[8:], 10)
        labels = (jnp.repeat(jnp.arange(8) % 10, 10) if family.num_classes else None)
        viz.save_grid(np.asarray(jax.jit(family.generate_from)(params, zs, labels)),
                      os.path.join(a.out, f"gan_mnist_{name}_interp.png"), nrow=10)
        records = viz.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
        last = [r for r in records if "d_loss" in r][-5:]
        entry = {"config": f"configs/{module}.py", "overrides": overrides, "steps": steps,
                 "batch_size": c.train.batch_size, "train_seconds": round(train_s, 1),
                 "final_d_loss": float(np.mean([r["d_loss"] for r in last])),
                 "final_g_loss": float(np.mean([r["g_loss"] for r in last])),
                 "finite": bool(all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"])
                                    for r in records if "d_loss" in r))}
        if feature_net:
            q = evaluation.sample_quality(c, family, params, jax.random.key(99), workdir)
            entry.update({k: q[k] for k in ("fd", "kid", "precision", "recall", "feature_net",
                                            "num_samples", "reference") if k in q})
            x = evaluation.generate(family, params, jax.random.key(99), 1000, 250)
            pred = logits_fn(x).argmax(-1)
            hist = np.bincount(pred, minlength=10) / len(pred)
            nz = hist > 0
            entry["digit_histogram"] = hist.round(4).tolist()
            entry["digits_present"] = int(np.sum(hist >= 0.01))
            entry["kl_to_uniform"] = float(np.sum(hist[nz] * np.log(hist[nz] * 10)))
            if family.num_classes:
                want = np.asarray(family.sample_labels(1000))
                entry["class_accuracy"] = float(np.mean(pred == want))
        result[name] = entry
        print(name, json.dumps(entry), flush=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
