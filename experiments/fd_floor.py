"""The noise floor of FD / KID / precision-recall on MNIST, and their response to noise.

Features: the MNIST classifier of ``experiments/train_classifier.py`` (penultimate layer,
128-d), loaded from the params file named in ``results/classifier_mnist.json`` (or
``--extractor``) and checked against the hash recorded there.

1. Floor: real ``test[:50%]`` (reference, 5,000 images; its statistics come from the
   on-disk reference cache, ``jaxgen.metrics.reference_stats``) against real
   ``test[50%:]`` (5,000). Also the spread of FD / KID over ``--resplits`` random
   50/50 splits of all 10,000 test images.
2. Corruption: ``test[50%:]`` plus Gaussian pixel noise of std sigma (images in [-1, 1],
   clipped back to [-1, 1] as a saved image would be), sigma in 0, 0.05, 0.1, 0.2, 0.4,
   0.8, against the same reference.

Caveat: the classifier was trained on ``test[:90%]``, which holds all of the reference
half and 80% of the other half, so the floor compares two halves of (mostly) its own
training data; a generated set is never seen in training. Only the MNIST test split is
available offline.

  .venv/bin/python experiments/fd_floor.py --data_dir ../shared/tfds

Writes ``results/fd_floor.json`` and ``results/fd_floor.png``.

3. ``--matched``: the floor of a run's own evaluation, at its sample count. A run on
   MNIST evaluates ``eval.num_samples`` generated images against its ``data.eval_split``
   (``test[90%:]``, 1,000 images: FD against their statistics, KID and PR against
   ``eval.num_samples`` of them). Here real images of ``test[:90%]`` stand in for the
   samples, n in ``--matched_n``, ``--matched_draws`` random draws each: the best any
   model can score in that setting (FD's bias grows as n shrinks).

  .venv/bin/python experiments/fd_floor.py --matched      # results/fd_floor_matched.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen.metrics import (DEFAULT_STATS_DIR, density_coverage, extract_features,  # noqa: E402
                            frechet_distance, kid, load_extractor, load_split_images,
                            precision_recall, reference_stats, stats_from_features)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SIGMAS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
REF_SPLIT, OTHER_SPLIT = "test[:50%]", "test[50%:]"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data_dir", default="../shared/tfds", help="TFDS data_dir holding mnist")
    ap.add_argument("--extractor", default=None,
                    help="params file (default: the one in results/classifier_mnist.json)")
    ap.add_argument("--cache_dir", default=DEFAULT_STATS_DIR, help="reference stats cache")
    ap.add_argument("--resplits", type=int, default=10, help="random 50/50 splits for the floor")
    ap.add_argument("--kid_subsets", type=int, default=100)
    ap.add_argument("--kid_subset_size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(RESULTS, "fd_floor"))
    ap.add_argument("--matched", action="store_true",
                    help="only the floor at a run's evaluation setting (see 3. above)")
    ap.add_argument("--matched_n", default="250,500,1000,2000,4000")
    ap.add_argument("--matched_draws", type=int, default=10)
    return ap.parse_args(argv)


EVAL_SPLIT, TRAIN_SPLIT = "test[90%:]", "test[:90%]"


def matched_floor(args, ext, ext_path):
    """Real ``test[:90%]`` images in the place of n samples, scored as ``sample_quality``
    scores a run: FD against the statistics of all of ``test[90%:]``, KID (subsets of
    half the sets) and precision/recall against its first n images."""
    ref_stats = reference_stats("mnist", EVAL_SPLIT, ext, data_dir=args.data_dir,
                                cache_dir=args.cache_dir)
    x_ref, _ = load_split_images("mnist", EVAL_SPLIT, args.data_dir)
    x_pool, _ = load_split_images("mnist", TRAIN_SPLIT, args.data_dir)
    f_ref, f_pool = extract_features(ext, x_ref), extract_features(ext, x_pool)
    rows = []
    for n in sorted({int(v) for v in args.matched_n.split(",")}):
        rng = np.random.default_rng([args.seed, n])
        vals = {"fd": [], "kid": [], "precision": [], "recall": []}
        real = f_ref[:n]
        for _ in range(args.matched_draws):
            f = f_pool[rng.choice(len(f_pool), n, replace=False)]
            vals["fd"].append(frechet_distance(stats_from_features(f, ext.identifier),
                                               ref_stats).value)
            size = max(2, min(1000, n // 2, len(real) // 2))
            vals["kid"].append(kid(f, real, subset_size=size, seed=args.seed).mean)
            pr = precision_recall(real, f)
            vals["precision"].append(pr.precision)
            vals["recall"].append(pr.recall)
        row = {"n": n, "knn_reference_count": len(real), "draws": args.matched_draws}
        for k, v in vals.items():
            row[k + "_mean"], row[k + "_std"] = float(np.mean(v)), float(np.std(v, ddof=1))
        rows.append(row)
        print(f"n={n:5d}: FD {row['fd_mean']:.3f} +- {row['fd_std']:.3f}  KID "
              f"{row['kid_mean']:.3f} +- {row['kid_std']:.3f}  P {row['precision_mean']:.3f} "
              f"R {row['recall_mean']:.3f}", flush=True)
    return {"what": "FD/KID/PR of real test[:90%] images scored as a run's samples are: "
                    "against test[90%:] (FD: its statistics, all 1,000; KID/PR: its first n)",
            "extractor": ext.identifier, "extractor_file": ext_path,
            "reference": {"dataset": "mnist", "split": EVAL_SPLIT, "n": ref_stats.count},
            "pool": {"dataset": "mnist", "split": TRAIN_SPLIT, "n": len(f_pool)},
            "caveat": "the classifier was trained on test[:90%], the pool these images come "
                      "from; generated images are never seen in training",
            "rows": rows}


def open_extractor(path):
    summary_path = os.path.join(RESULTS, "classifier_mnist.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
    if path is None:
        if summary is None:
            sys.exit(f"no --extractor and no {summary_path}; run experiments/train_classifier.py")
        path = summary["params_file"]
    if not os.path.exists(path):
        sys.exit(f"{path} not found: train it with experiments/train_classifier.py "
                 f"--dataset=mnist (weights are not committed)")
    ext = load_extractor(path)
    if summary is not None and ext.hash != summary["sha256"]:
        print(f"note: {path} is {ext.identifier}, not the {summary['extractor']} of "
              f"{summary_path}")
    return ext, path


def fd_via_sqrtm(a, b):
    """FD by the common route tr sqrtm(S1 S2) of a non-symmetric product (scipy), for
    comparison: returns (FD from the real part, max |imag| / max |real| of the root)."""
    import scipy.linalg

    root = scipy.linalg.sqrtm(a.cov @ b.cov)
    imag = float(np.max(np.abs(np.imag(root))) / np.max(np.abs(np.real(root))))
    diff = a.mean - b.mean
    fd = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * np.trace(np.real(root))
    return float(fd), imag


def all_metrics(ext, f_ref, ref_stats, f_other, label, args):
    """FD / KID / PR / DC of features f_other against the reference."""
    s = stats_from_features(f_other, ext.identifier, "mnist", label)
    fd = frechet_distance(s, ref_stats)
    fd_sqrtm, imag = fd_via_sqrtm(s, ref_stats)
    k = kid(f_other, f_ref, num_subsets=args.kid_subsets, subset_size=args.kid_subset_size,
            seed=args.seed, label_x=label, label_y=REF_SPLIT)
    pr = precision_recall(f_ref, f_other, label_real=REF_SPLIT, label_fake=label)
    dc = density_coverage(f_ref, f_other, label_real=REF_SPLIT, label_fake=label)
    return {"fd": fd.value, "fd_mean_term": fd.mean_term, "fd_trace_term": fd.trace_term,
            "fd_num_clipped": fd.num_clipped, "fd_sqrt_residual": fd.sqrt_residual,
            "fd_min_eigenvalue": fd.min_eigenvalue, "fd_scipy_sqrtm": fd_sqrtm,
            "scipy_sqrtm_imag_rel": imag,
            "kid": k.mean, "kid_std": k.std, "precision": pr.precision, "recall": pr.recall,
            "density": dc.density, "coverage": dc.coverage, "n": len(f_other),
            "n_reference": len(f_ref),
            "text": [fd.description, k.description, pr.description, dc.description]}


def plot(results, path, examples):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sig = [r["sigma"] for r in results["noise"]]
    x = np.arange(len(sig))
    floor = results["floor"]
    fig = plt.figure(figsize=(13, 6.2))
    gs = fig.add_gridspec(2, 3, height_ratios=[3, 1])
    ax = fig.add_subplot(gs[0, 0])
    ax.semilogy(x, [r["fd"] for r in results["noise"]], "o-", label="noisy test[50%:]")
    rs = results["resplit_floor"]
    ax.axhspan(max(rs["fd_mean"] - 2 * rs["fd_std"], 1e-6), rs["fd_mean"] + 2 * rs["fd_std"],
               color="0.85", label=f"floor: random halves, mean +- 2 std ({rs['num']})")
    ax.axhline(floor["fd"], color="k", ls="--", lw=1, label=f"floor {floor['fd']:.3g}")
    ax.set_title("FD (classifier features)")
    ax2 = fig.add_subplot(gs[0, 1])
    kids = np.array([r["kid"] for r in results["noise"]])
    ax2.errorbar(x, kids, yerr=[r["kid_std"] for r in results["noise"]], fmt="o-", capsize=3,
                 label="noisy test[50%:] (+- std over subsets)")
    # Linear within +-10: the floor is consistent with 0 (KID is unbiased) and its
    # per-subset spread is several units at these feature scales.
    ax2.set_yscale("symlog", linthresh=10)
    ax2.axhspan(rs["kid_mean"] - 2 * rs["kid_std"], rs["kid_mean"] + 2 * rs["kid_std"],
                color="0.85", label=f"floor: random halves, mean +- 2 std ({rs['num']})")
    ax2.axhline(0, color="k", lw=0.5)
    ax2.set_title(f"KID ({results['kid']['num_subsets']} subsets of "
                  f"{results['kid']['subset_size']})")
    ax3 = fig.add_subplot(gs[0, 2])
    for key in ("precision", "recall", "density", "coverage"):
        ax3.plot(x, [r[key] for r in results["noise"]], "o-", label=key)
    ax3.set_title("precision / recall (k=3), density / coverage (k=5)")
    for a in (ax, ax2, ax3):
        a.set_xticks(x, [f"{s:g}" for s in sig])
        a.set_xlabel("noise sigma (images in [-1, 1])")
        a.legend(fontsize=8)
    axi = fig.add_subplot(gs[1, :])
    axi.imshow(np.concatenate(list(examples), axis=1), cmap="gray", vmin=-1, vmax=1)
    axi.set_axis_off()
    axi.set_title("one test[50%:] image at each sigma (left to right)", fontsize=9)
    n = floor["n"]
    fig.suptitle(f"MNIST: n={n} per set vs reference {REF_SPLIT} (n={floor['n_reference']}), "
                 f"features {results['extractor']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    ext, ext_path = open_extractor(args.extractor)
    if args.matched:
        results = matched_floor(args, ext, ext_path)
        results["wall_s"] = round(time.time() - t0, 1)
        out = args.out + "_matched.json"
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {out} ({results['wall_s']} s)")
        return
    ref_stats = reference_stats("mnist", REF_SPLIT, ext, data_dir=args.data_dir,
                                cache_dir=args.cache_dir)
    x_ref, _ = load_split_images("mnist", REF_SPLIT, args.data_dir)
    x_other, _ = load_split_images("mnist", OTHER_SPLIT, args.data_dir)
    f_ref = extract_features(ext, x_ref)
    f_other = extract_features(ext, x_other)
    # The cached statistics must be those of the features used here.
    check = frechet_distance(stats_from_features(f_ref, ext.identifier, "mnist", REF_SPLIT),
                             ref_stats).value
    print(f"reference: {ref_stats.describe()}; FD to the same features recomputed: {check:.2e}")

    floor = all_metrics(ext, f_ref, ref_stats, f_other, OTHER_SPLIT, args)
    print("floor:", *floor["text"], sep="\n  ")
    print(f"  FD via scipy sqrtm(S1 S2): {floor['fd_scipy_sqrtm']:.10g} vs eigh {floor['fd']:.10g} "
          f"(sqrtm's max |imag| / max |real| {floor['scipy_sqrtm_imag_rel']:.1e}; eigenvalues "
          f"zeroed {floor['fd_num_clipped']}, sqrt residual {floor['fd_sqrt_residual']:.1e})")

    rng = np.random.default_rng(args.seed)
    pooled = np.concatenate([f_ref, f_other])
    fds, kids = [], []
    for _ in range(args.resplits):
        p = rng.permutation(len(pooled))
        a, b = pooled[p[:len(f_ref)]], pooled[p[len(f_ref):]]
        fds.append(frechet_distance(stats_from_features(b, ext.identifier),
                                    stats_from_features(a, ext.identifier)).value)
        kids.append(kid(b, a, num_subsets=20, subset_size=args.kid_subset_size,
                        seed=args.seed).mean)
    resplit = {"num": args.resplits, "fd_mean": float(np.mean(fds)),
               "fd_std": float(np.std(fds, ddof=1)), "kid_mean": float(np.mean(kids)),
               "kid_std": float(np.std(kids, ddof=1)), "fd": fds, "kid": kids}
    print(f"floor over {args.resplits} random 50/50 splits of all 10,000: FD "
          f"{resplit['fd_mean']:.4g} +- {resplit['fd_std']:.2g}, KID {resplit['kid_mean']:.2g} "
          f"+- {resplit['kid_std']:.2g}")

    noise, examples = [], []
    for i, sigma in enumerate(SIGMAS):
        nrng = np.random.default_rng([args.seed, i])
        noisy = np.clip(x_other + sigma * nrng.standard_normal(x_other.shape), -1, 1)
        noisy = noisy.astype(np.float32)
        examples.append(noisy[0, :, :, 0])
        r = all_metrics(ext, f_ref, ref_stats, extract_features(ext, noisy),
                        f"{OTHER_SPLIT}+N(0,{sigma:g}^2)", args)
        r["sigma"] = sigma
        noise.append(r)
        print(f"sigma {sigma:<5g} FD {r['fd']:10.4f}  KID {r['kid']:.5f} +- {r['kid_std']:.5f}  "
              f"P {r['precision']:.3f} R {r['recall']:.3f} D {r['density']:.3f} "
              f"C {r['coverage']:.3f}")

    results = {
        "what": "FD/KID/PR/DC floor between MNIST test halves and under Gaussian pixel noise",
        "extractor": ext.identifier, "extractor_sha256": ext.hash, "extractor_file": ext_path,
        "reference": {"dataset": "mnist", "split": REF_SPLIT, "n": ref_stats.count},
        "compared": {"dataset": "mnist", "split": OTHER_SPLIT, "n": len(f_other)},
        "kid": {"num_subsets": args.kid_subsets, "subset_size": args.kid_subset_size},
        "pr_k": 3, "dc_k": 5,
        "caveat": "the classifier was trained on test[:90%] (both halves mostly seen)",
        "floor": floor, "resplit_floor": resplit, "noise": noise,
        "env": {"jax": jax.__version__, "backend": jax.default_backend(),
                "python": platform.python_version()},
        "wall_s": round(time.time() - t0, 1),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(results, f, indent=2)
    plot(results, args.out + ".png", examples)
    print(f"wrote {args.out}.json and {args.out}.png ({results['wall_s']} s)")


if __name__ == "__main__":
    main()
