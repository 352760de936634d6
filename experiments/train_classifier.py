"""Trains the small feature classifier on a dataset and saves it as a hashed extractor.

The classifier (``jaxgen.nets.classifier.Classifier``) provides the penultimate-layer
features that FD / KID / precision-recall use for datasets where InceptionV3 features
say little (MNIST, 8x8 digits). Splits:

* mnist: train on ``test[:90%]`` (9,000 images), evaluate on ``test[90%:]`` (1,000):
  only the MNIST test split is available offline (``--data_dir ../shared/tfds``).
* digits: the bundled deterministic ``train`` (1,621) / ``test`` (176) split of
  ``jaxgen.data.digits_source``.

Training: Adam with decoupled weight decay and a cosine learning-rate decay, random
translations of up to ``--shift`` pixels (zero = background -1 padding); deterministic
given ``--seed`` (data order from numpy's PCG64, init from jax.random).

Writes the parameters to ``<out>/classifier-<dataset>-<hash16>.msgpack`` (``--out``
defaults to runs/feature_nets, which git ignores: trained weights are never committed)
and ``experiments/results/classifier_<dataset>.json`` with accuracy, hash and counts.

  .venv/bin/python experiments/train_classifier.py --dataset=mnist --data_dir=../shared/tfds
  .venv/bin/python experiments/train_classifier.py --dataset=digits
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen.metrics import (DEFAULT_FEATURE_DIR, classifier_extractor,  # noqa: E402
                            load_split_images)
from jaxgen.nets.classifier import Classifier  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SPLITS = {"mnist": ("test[:90%]", "test[90%:]"), "digits": ("train", "test")}
DEFAULT_STEPS = {"mnist": 1500, "digits": 1000}
DEFAULT_SHIFT = {"mnist": 2, "digits": 1}

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "mnist", list(SPLITS), "dataset to train on")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (mnist), e.g. ../shared/tfds")
flags.DEFINE_string("out", DEFAULT_FEATURE_DIR, "folder for the params file")
flags.DEFINE_string("results_dir", RESULTS, "folder for the JSON summary")
flags.DEFINE_integer("steps", None, "optimizer steps (default 1500 mnist, 1000 digits)")
flags.DEFINE_integer("batch_size", 128, "batch size")
flags.DEFINE_float("lr", 2e-3, "peak learning rate")
flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay")
flags.DEFINE_integer("shift", None, "max random translation in pixels (default 2 mnist, 1 digits)")
flags.DEFINE_integer("seed", 0, "seed of init and data order")


def random_shift(rng: np.random.Generator, x: np.ndarray, max_shift: int) -> np.ndarray:
    """Translates each image by up to max_shift pixels; uncovered pixels become -1."""
    if max_shift == 0:
        return x
    n, h, w, _ = x.shape
    pad = np.pad(x, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), constant_values=-1.0)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    return np.stack([pad[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def accuracy(apply, params, x, y, batch=500) -> float:
    hits = 0
    for s in range(0, len(x), batch):
        logits = apply(params, x[s:s + batch])
        hits += int(np.sum(np.argmax(np.asarray(logits), -1) == y[s:s + batch]))
    return hits / len(x)


def main(argv):
    del argv
    name = FLAGS.dataset
    train_split, eval_split = SPLITS[name]
    steps = FLAGS.steps or DEFAULT_STEPS[name]
    shift = DEFAULT_SHIFT[name] if FLAGS.shift is None else FLAGS.shift
    x_train, y_train = load_split_images(name, train_split, FLAGS.data_dir)
    x_eval, y_eval = load_split_images(name, eval_split, FLAGS.data_dir)
    print(f"{name}: train {train_split} n={len(x_train)}, eval {eval_split} n={len(x_eval)}, "
          f"images {x_train.shape[1:]}")

    model = Classifier(num_classes=10)
    params = jax.jit(model.init)(jax.random.key(FLAGS.seed), jnp.zeros((1,) + x_train.shape[1:]))
    params = params["params"]
    schedule = optax.warmup_cosine_decay_schedule(0.0, FLAGS.lr, min(100, steps // 10), steps)
    tx = optax.adamw(schedule, weight_decay=FLAGS.weight_decay)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, x, y):
        def loss_fn(p):
            logits, _ = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    logits_fn = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
    rng = np.random.default_rng(FLAGS.seed)
    order, pos = rng.permutation(len(x_train)), 0
    t0 = time.time()
    for step in range(steps):
        if pos + FLAGS.batch_size > len(order):
            order, pos = rng.permutation(len(x_train)), 0
        idx = order[pos:pos + FLAGS.batch_size]
        pos += FLAGS.batch_size
        xb = random_shift(rng, x_train[idx], shift)
        params, opt_state, loss = train_step(params, opt_state, xb, y_train[idx])
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step:5d} loss {float(loss):.4f} ({time.time() - t0:.0f} s)", flush=True)
    wall = time.time() - t0

    test_acc = accuracy(logits_fn, params, x_eval, y_eval)
    train_acc = accuracy(logits_fn, params, x_train, y_train)
    ext = classifier_extractor(params, name=f"classifier-{name}", input_shape=x_train.shape[1:])
    path = ext.save(FLAGS.out)
    summary = {
        "dataset": name, "train_split": train_split, "eval_split": eval_split,
        "num_train": len(x_train), "num_eval": len(x_eval),
        "test_accuracy": test_acc, "train_accuracy": train_acc,
        "extractor": ext.identifier, "sha256": ext.hash, "params_file": path,
        "feature_dim": ext.feature_dim, "config": ext.config,
        "steps": steps, "batch_size": FLAGS.batch_size, "lr": FLAGS.lr,
        "weight_decay": FLAGS.weight_decay, "shift": shift, "seed": FLAGS.seed,
        "train_wall_s": round(wall, 1),
        "env": {"jax": jax.__version__, "backend": jax.default_backend(),
                "devices": jax.device_count(), "python": platform.python_version()},
    }
    os.makedirs(FLAGS.results_dir, exist_ok=True)
    out_json = os.path.join(FLAGS.results_dir, f"classifier_{name}.json")
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"{name}: test accuracy {100 * test_acc:.2f}% on {eval_split} (n={len(x_eval)}), "
          f"train accuracy {100 * train_acc:.2f}% (n={len(x_train)}); {ext.identifier}")
    print(f"params: {path}\nsummary: {out_json}")


if __name__ == "__main__":
    app.run(main)
