"""Mode collapse on Stacked MNIST (1,000 modes): a DCGAN trained through the generic loop,
then the modes of its samples counted with the MNIST classifier, channel by channel.

Protocol of Srivastava et al. 2017 (VEEGAN, Table 2; also Lin et al. 2018, PacGAN,
Table 2): 26,000 generated samples; each channel is classified as a digit, the triple
(d_R, d_G, d_B) is the sample's mode; report the number of modes with at least one
sample and KL(q || uniform), q the histogram of the samples' modes over the 1,000 modes.
The same counts on real stacked images (classified the same way, so classifier errors
appear in the floor too) give what a perfect generator would score at n = 26,000: real
stacked images are drawn by choosing three of the 9,000 training digits uniformly at
random (with replacement). The classifier names a digit for any input, so the counts are
also given over the samples whose three channels it classifies with probability >= 0.9
("clear").

Published (VEEGAN Table 2): DCGAN 99 modes, KL 3.4; ALI 16, 5.4; Unrolled GAN 48.7, 4.32;
VEEGAN 150, 2.95. Those used other players (a reduced discriminator chosen to make the
benchmark hard, following Metz et al.), 60,000 training digits and their own classifier,
so the numbers sit beside each other, they do not reproduce each other.

Usage:
  .venv/bin/python experiments/stacked_mnist.py --data_dir=../shared/tfds --steps 3000
  (needs runs/feature_nets/classifier-mnist-*.msgpack: experiments/train_classifier.py)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from configs import dcgan_stacked_mnist  # noqa: E402
from experiments.gan_mnist import classifier_logits  # noqa: E402
from jaxgen import data, viz  # noqa: E402
from jaxgen.train import evaluation, loop  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
PUBLISHED = {"VEEGAN Table 2": {"DCGAN": [99, 3.4], "ALI": [16, 5.4],
                                "Unrolled GAN": [48.7, 4.32], "VEEGAN": [150, 2.95]}}
NUM_MODES = 1000


# A channel counts as a clear digit when the classifier gives its top class at least this
# probability; the mode of a sample whose channels are all clear is "confident".
CONFIDENT = 0.9


def modes_of(images, logits_fn):
    """Mode index 100 d_R + 10 d_G + d_B (N,) of stacked images (N, 28, 28, 3) in [-1, 1],
    and whether all three channels are clear digits (N,) bool."""
    digits, clear = [], []
    for c in range(3):
        logits = logits_fn(np.ascontiguousarray(images[..., c:c + 1]))
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        digits.append(p.argmax(-1))
        clear.append(p.max(-1) >= CONFIDENT)
    return 100 * digits[0] + 10 * digits[1] + digits[2], np.all(clear, axis=0)


def _histogram(modes) -> dict:
    q = np.bincount(np.asarray(modes, dtype=np.int64), minlength=NUM_MODES) / max(1, len(modes))
    nz = q > 0
    return {"modes": int(nz.sum()),
            "kl_to_uniform": float(np.sum(q[nz] * np.log(q[nz] * NUM_MODES))),
            "largest_mode_share": float(q.max())}


def mode_statistics(modes, clear=None) -> dict:
    """Modes with at least one sample, KL(q || uniform) in nats and the largest share; with
    ``clear``, the fraction of samples whose three channels are clear digits and the same
    statistics over those samples only (a classifier names a digit even for a blob, so
    the plain count can credit modes to samples that show none)."""
    out = {**_histogram(modes), "num_samples": int(len(modes))}
    if clear is not None:
        out["clear_fraction"] = float(np.mean(clear))
        out["clear"] = _histogram(np.asarray(modes)[clear])
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--data_dir", default="../shared/tfds")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--num_samples", type=int, default=26000)
    p.add_argument("--workdir", default="runs/stacked_mnist")
    p.add_argument("--out", default=RESULTS)
    a = p.parse_args(argv)
    nets = sorted(glob.glob("runs/feature_nets/classifier-mnist-*.msgpack"))
    if not nets:
        sys.exit("error: no MNIST classifier in runs/feature_nets; run "
                 "experiments/train_classifier.py --dataset=mnist first")
    logits_fn = classifier_logits(nets[0])

    c = dcgan_stacked_mnist.get_config()
    c.data.data_dir = a.data_dir
    c.train.num_steps = a.steps
    c.train.checkpoint_every = max(1, a.steps // 4)
    c.train.sample_every = 0
    c.train.log_every = 50
    c.eval.num_samples = 0
    state = loop.train(c, a.workdir, quiet=True)
    family = loop.make_family(c, (28, 28, 3))

    # Real floor: three digits of the training split drawn with replacement.
    base = data.make_source("mnist", c.data.split, a.data_dir)
    digits, labels = base.get_batch(np.arange(len(base)))
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(base), size=(a.num_samples, 3))
    real, true_modes = data.stack_channels(digits, labels, pick, 10)
    real = real.astype(np.float32) / 127.5 - 1.0
    real_modes, real_clear = modes_of(real, logits_fn)

    result = {"config": "configs/dcgan_stacked_mnist.py", "steps": a.steps,
              "batch_size": c.train.batch_size,
              "classifier": os.path.basename(nets[0]),
              "real_classified": mode_statistics(real_modes, real_clear),
              "real_true_labels": mode_statistics(true_modes),
              "real_classifier_mode_accuracy": float(np.mean(real_modes == true_modes)),
              "published": PUBLISHED}
    records = viz.read_jsonl(os.path.join(a.workdir, "metrics.jsonl"))
    # Training time from the logged step rates, so a rerun that only
    # evaluates a finished run reports the time its training took.
    result["train_seconds"] = round(sum(c.train.log_every / r["steps_per_sec"]
                                        for r in records if r.get("steps_per_sec")), 1)
    last = [r for r in records if "d_loss" in r][-5:]
    result["final_d_loss"] = float(np.mean([r["d_loss"] for r in last]))
    result["final_g_loss"] = float(np.mean([r["g_loss"] for r in last]))
    for name, params in (("ema_generator", state.ema_params),
                         ("raw_generator", {"params": state.params["generator"],
                                            "batch_stats": state.model_state["generator"]})):
        x = np.asarray(evaluation.generate(family, params, jax.random.key(99), a.num_samples,
                                           1000))
        result[name] = mode_statistics(*modes_of(x, logits_fn))
        viz.save_grid(x[:100], os.path.join(
            a.out, f"stacked_mnist_{name}.png"), nrow=10)
        print(name, result[name], flush=True)
    print("real", result["real_classified"], "true", result["real_true_labels"])
    with open(os.path.join(a.out, "stacked_mnist.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {os.path.join(a.out, 'stacked_mnist.json')}")


if __name__ == "__main__":
    main()
