"""Sample quality against the number of model evaluations (NFE), for every sampler.

Toy part (always runs; no training): the data are a 2-D Gaussian mixture (default the
5 x 5 grid of ``analytic.toy_mixture_2d``) and ``model_fn`` is its *exact* denoiser
E[x_0 | x_t] (``analytic.exact_denoiser``), i.e. a perfectly trained network. Any gap
to the data distribution is therefore the sampler's discretisation error alone. For
each process, method and NFE we draw ``--n`` samples and compute the unbiased energy
distance (Szekely & Rizzo 2013) to a fresh data sample of the same size. All methods on
one process start from the same x_T and use the same noise key (common random numbers),
so their differences are not sampling noise of x_T.

Noise floor: the same statistic between two fresh data samples, over ``--floor-seeds``
independent pairs (mean +- std). "Reaches DDPM-1000 quality" means

    ED(method, NFE) <= max(ED(ddpm ancestral, 1000 steps, same process),
                           floor mean + 2 floor std),

and the report gives, per process and method, the smallest NFE of the sweep at which that
holds. NFE counts model evaluations (``diffusion.evaluations``): 'heun' and 'pc' spend
2N - 1 on N levels, so for a target NFE k they get N = (k + 1) // 2 levels (NFE k or k - 1).

Image part (optional, ``--checkpoint WORKDIR``): a trained jaxgen diffusion run
(``jaxgen.load``) is sampled with every method at ``--image-nfe`` and compared with
held-out real images of its own dataset (``config.data.name``, split ``--real-split``,
default the run's ``eval_split``; for MNIST use ``test[90%:]`` with
``--data-dir ../shared/tfds``) by the energy distance on 2x2-average-pooled pixels
(``--pool``). The held-out set is split in halves: generated samples are compared with
half A; the floor is half B against half A over random splits. Sampling a UNet at 1000
steps is slow on a CPU: the DDPM-1000 reference is only drawn with
``--image-reference-steps 1000``.

  python experiments/quality_vs_steps.py                       # toy sweep, ~3-8 min on 2 cores
  python experiments/quality_vs_steps.py --n 2000 --nfe 5,10,20,50   # quick look
  python experiments/quality_vs_steps.py --checkpoint runs/mnist --data-dir ../shared/tfds \\
      --real-split 'test[90%:]' --image-nfe 10,20,50,100 --skip-toy

Writes ``experiments/results/quality_vs_steps.json`` and ``.png`` (and
``quality_vs_steps_images.json`` / ``.png`` for the image part), and prints markdown
tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgen import diffusion  # noqa: E402
from jaxgen.diffusion import analytic  # noqa: E402
from jaxgen.metrics import energy_distance  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
METHODS = diffusion.METHODS
# What the exact denoiser hands each process: the parameterisation a network trained on
# that process would usually predict, chosen so the samplers' conversion to (x0, eps) is
# well conditioned at both ends of the grid ('eps' is singular where alpha = 0, i.e. at
# t = 1 for rectified flow; 'velocity' needs d alpha/dt, which the denoiser does not take).
PREDICTION = {"ddpm": "eps", "vp": "eps", "ve": "x0", "rectified_flow": "v", "edm": "x0"}
DEFAULT_PROCESSES = "ddpm,ddpm:trailing,vp,ve,rectified_flow,edm"
REFERENCE = ("ddpm", 1000)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="samples per (process, method, NFE)")
    ap.add_argument("--nfe", default="5,10,20,50,100,200,1000",
                    help="comma-separated target NFEs")
    ap.add_argument("--processes", default=DEFAULT_PROCESSES,
                    help="comma-separated process[:spacing] (spacing default: the process's)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--mixture", default="grid", choices=analytic.TOY_MIXTURES)
    ap.add_argument("--floor-seeds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-toy", action="store_true")
    ap.add_argument("--out", default=os.path.join(RESULTS, "quality_vs_steps.json"))
    img = ap.add_argument_group("image part (a trained checkpoint)")
    img.add_argument("--checkpoint", default=None, help="jaxgen workdir of a diffusion run")
    img.add_argument("--data-dir", default=None, help="TFDS data_dir (default: the run's)")
    img.add_argument("--real-split", default=None, help="held-out split (default: eval_split)")
    img.add_argument("--image-n", type=int, default=500,
                     help="generated samples per cell (= size of each real half; capped "
                          "by half the held-out set)")
    img.add_argument("--image-nfe", default="10,20,50,100")
    img.add_argument("--image-methods", default="ddpm,ddim,heun,dpm_solver++")
    img.add_argument("--image-spacing", default=None,
                     help="grid spacing (default: 'trailing' for a discrete process, else "
                          "the process's default)")
    img.add_argument("--image-reference-steps", type=int, default=0,
                     help="also draw the DDPM reference at this many steps (e.g. 1000)")
    img.add_argument("--image-batch", type=int, default=250)
    img.add_argument("--pool", type=int, default=2, help="average-pool factor before the ED")
    img.add_argument("--feature-net", default=None,
                     help="also the FD of each cell on these features (a FeatureExtractor "
                          "file, e.g. the MNIST classifier) against the whole held-out split")
    return ap.parse_args(argv)


def parse_process(spec: str):
    name, _, spacing = spec.partition(":")
    process = diffusion.make_process(name)
    return name, spacing or process.default_spacing, process


def steps_for(method: str, nfe: int) -> int:
    """Grid levels N with evaluations(method, N) = nfe (or nfe - 1 for 2N - 1 methods)."""
    return max(1, (nfe + 1) // 2) if method in ("heun", "pc") else nfe


def noise_floor(sample_fn, n: int, seeds: int, rng) -> dict:
    vals = [float(energy_distance(sample_fn(jax.random.fold_in(rng, 2 * s), n),
                                  sample_fn(jax.random.fold_in(rng, 2 * s + 1), n)))
            for s in range(seeds)]
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)), "values": vals}


def threshold(floor: dict, ref_value) -> float:
    tol = floor["mean"] + 2.0 * floor["std"]
    return tol if ref_value is None or not np.isfinite(ref_value) else max(tol, ref_value)


# ---------------------------------------------------------------------------- toy sweep


def toy_sweep(args) -> dict:
    mixture = analytic.toy_mixture_2d(args.mixture)
    nfes = sorted({int(v) for v in args.nfe.split(",")})
    methods = [m for m in args.methods.split(",") if m]
    base = jax.random.key(args.seed)
    ref = mixture.sample(jax.random.fold_in(base, 1), args.n)
    floor = noise_floor(mixture.sample, args.n, args.floor_seeds, jax.random.fold_in(base, 2))
    print(f"noise floor (ED between two fresh samples of {args.n}, {args.floor_seeds} pairs): "
          f"{floor['mean']:.2e} +- {floor['std']:.2e}", flush=True)
    panels = []
    for spec in args.processes.split(","):
        name, spacing, process = parse_process(spec)
        prediction = PREDICTION[name]
        model_fn = analytic.exact_denoiser(mixture, process, prediction)
        x_T = diffusion.prior_noise(process, jax.random.fold_in(base, 3), (args.n, 2))
        key = jax.random.fold_in(base, 4)
        rows = []

        def run(method, steps):
            fn = jax.jit(lambda x, k: diffusion.sample(
                model_fn, process, x, k, method=method, num_steps=steps,
                prediction=prediction, spacing=spacing))
            t0 = time.perf_counter()
            try:
                x = fn(x_T, key).block_until_ready()
            except ValueError as e:  # e.g. an SDE sampler on rectified flow
                return {"skipped": str(e).split("\n")[0]}
            wall = time.perf_counter() - t0
            finite = bool(jnp.all(jnp.isfinite(x)))
            ed = float(energy_distance(x, ref)) if finite else float("nan")
            return {"ed": ed, "finite": finite, "wall_s": wall}

        for method in methods:
            seen = set()
            for target in nfes:
                steps = steps_for(method, target)
                if getattr(process, "num_timesteps", None) is not None:
                    steps = min(steps, process.num_timesteps)
                if steps in seen:
                    continue
                seen.add(steps)
                r = run(method, steps)
                rows.append({"method": method, "target_nfe": target, "steps": steps,
                             "nfe": diffusion.evaluations(method, steps), **r})
                if "skipped" in r:
                    print(f"  {spec:22s} {method:15s} skipped: {r['skipped'][:70]}", flush=True)
                    break
                print(f"  {spec:22s} {method:15s} N={steps:5d} NFE={rows[-1]['nfe']:5d} "
                      f"ED={r['ed']: .2e} ({r['wall_s']:.1f} s)", flush=True)
        ref_row = [r for r in rows if (r["method"], r["steps"]) == REFERENCE and "ed" in r]
        if ref_row:
            ref_ed = ref_row[0]["ed"]
        elif "ddpm" in methods:
            ref_ed = run(*REFERENCE).get("ed")
        else:
            ref_ed = None
        thr = threshold(floor, ref_ed)
        reach = {}
        for method in methods:
            hits = [r["nfe"] for r in rows if r["method"] == method and r.get("ed", np.inf) <= thr]
            reach[method] = min(hits) if hits else None
        panels.append({"process": spec, "name": name, "spacing": spacing,
                       "prediction": prediction, "ddpm1000_ed": ref_ed, "threshold": thr,
                       "rows": rows, "reach_nfe": reach})
    return {"mixture": args.mixture, "n": args.n, "nfe_targets": nfes, "methods": methods,
            "floor": floor, "panels": panels,
            "criterion": "ED <= max(ED of DDPM ancestral with 1000 steps on the same process, "
                         "noise-floor mean + 2 std); smallest NFE of the sweep"}


# ---------------------------------------------------------------------------- reports


def fmt(v, scale=1e3):
    return "n/a" if v is None or not np.isfinite(v) else f"{v * scale:.2f}"


def markdown(result: dict, unit: str = "1e-3") -> str:
    nfes = result["nfe_targets"]
    ref = result.get("reference_label", "DDPM-1000")
    out = [f"Energy distance (x {unit}; lower is better) vs target NFE. Noise floor "
           f"{fmt(result['floor']['mean'])} +- {fmt(result['floor']['std'])}; "
           "'heun'/'pc' use N = (NFE+1)//2 levels (2N-1 evaluations).", ""]
    out.append("| process | method | " + " | ".join(f"{k}" for k in nfes)
               + f" | NFE to reach {ref} |")
    out.append("| --- | --- | " + " | ".join("---:" for _ in nfes) + " | ---: |")
    for p in result["panels"]:
        for method in result["methods"]:
            rows = {r["target_nfe"]: r for r in p["rows"] if r["method"] == method}
            if not rows:
                continue
            if any("skipped" in r for r in rows.values()):
                out.append(f"| {p['process']} | {method} | " + " | ".join("-" for _ in nfes)
                           + " | not applicable |")
                continue
            cells = [fmt(rows[k]["ed"]) if k in rows else "" for k in nfes]
            reach = p["reach_nfe"].get(method)
            out.append(f"| {p['process']} | {method} | " + " | ".join(cells) + " | "
                       + (str(reach) if reach else "> max") + " |")
    out.append("")
    out.append(f"| process (spacing, prediction) | {ref} ED | threshold | best method(s) "
               "| its NFE |")
    out.append("| --- | ---: | ---: | --- | ---: |")
    for p in result["panels"]:
        reached = {m: v for m, v in p["reach_nfe"].items() if v}
        nfe = min(reached.values()) if reached else None
        best = ", ".join(m for m, v in reached.items() if v == nfe) or "-"
        out.append(f"| {p['process']} ({p['spacing']}, {p['prediction']}) | "
                   f"{fmt(p['ddpm1000_ed'])} | {fmt(p['threshold'])} | {best} | "
                   f"{nfe or '-'} |")
    return "\n".join(out)


def markdown_fd(result: dict) -> str:
    """FD (lower is better) per method and NFE, for an image sweep with --feature-net."""
    nfes = result["nfe_targets"]
    out = [f"FD on {result['fd_features']} features vs target NFE (n = {result['n']} samples "
           f"against all of {result['dataset']} {result['split']}).", "",
           "| method | " + " | ".join(str(k) for k in nfes) + " |",
           "| --- | " + " | ".join("---:" for _ in nfes) + " |"]
    for method in result["methods"]:
        rows = {r["target_nfe"]: r for r in result["panels"][0]["rows"]
                if r["method"] == method and "fd" in r}
        if rows:
            out.append(f"| {method} | " + " | ".join(f"{rows[k]['fd']:.1f}" if k in rows else ""
                                                     for k in nfes) + " |")
    return "\n".join(out)


def plot_fd(result: dict, path: str, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in result["methods"]:
        rows = sorted((r["nfe"], r["fd"]) for r in result["panels"][0]["rows"]
                      if r["method"] == method and "fd" in r)
        if rows:
            ax.loglog(*zip(*rows), "o-", label=method)
    ax.set_xlabel("model evaluations (NFE)")
    ax.set_ylabel(f"FD ({result['fd_features']})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(result: dict, path: str, title: str, lo: float = 1e-4, hi: float = 1.0) -> str:
    """One panel per process: ED vs NFE (log-log), one line per method; values outside
    [lo, hi] are drawn at the edge (ED is unbiased, so near the floor it can be < 0)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = result["panels"]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(5.2 * cols, 9.0), 4.0 * rows + 0.6),
                             squeeze=False, sharey=True)
    colors = dict(zip(METHODS, plt.get_cmap("tab10").colors))
    markers = dict(zip(METHODS, "os^vDPX"))
    styles = {"ddim": "--"}  # coincides with 'euler' on 'snr' processes: keep both visible
    floor = result["floor"]
    for ax, p in zip(axes.flat, panels):
        for method in result["methods"]:
            pts = [(r["nfe"], r["ed"]) for r in p["rows"]
                   if r["method"] == method and "ed" in r and np.isfinite(r["ed"])]
            if not pts:
                continue
            x, y = zip(*pts)
            ax.plot(x, np.clip(y, lo, hi), marker=markers.get(method, "o"), ms=4,
                    ls=styles.get(method, "-"), color=colors.get(method), label=method)
        ax.axhspan(lo, max(lo, floor["mean"] + 2 * floor["std"]), color="0.85", zorder=0,
                   label="noise floor + 2 std")
        if p["ddpm1000_ed"] is not None:
            ax.axhline(p["threshold"], color="k", ls="--", lw=0.8, label="reach threshold")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(lo * 0.8, hi * 1.25)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{p['process']} ({p['spacing']}, pred={p['prediction']})", fontsize=10)
        ax.set_xlabel("NFE (model evaluations)")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("energy distance to data")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(seen.values(), seen.keys(), loc="lower center",
               ncol=min(len(seen), 5 if cols > 1 else 4), fontsize=9, frameon=False)
    fig.suptitle(title + f" (values clipped to [{lo:g}, {hi:g}])", fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if rows > 1 else 0.16, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- images


def pool_flat(x: np.ndarray, k: int) -> np.ndarray:
    """(n, H, W, C) -> (n, H/k * W/k * C): k x k average pooling, then flattening."""
    n, h, w, c = x.shape
    if k > 1:
        x = x[:, : h - h % k, : w - w % k].reshape(n, h // k, k, w // k, k, c).mean((2, 4))
    return x.reshape(n, -1)


def image_sweep(args) -> dict:
    import jaxgen
    from jaxgen.data import sources
    from jaxgen.data.pipeline import preprocess

    run = jaxgen.load(args.checkpoint)
    cfg, family = run.config, run.family
    if getattr(family, "name", None) != "diffusion":
        raise ValueError(f"--checkpoint must be a diffusion run, got family {family!r}")
    split = args.real_split or cfg.data.eval_split
    data_dir = args.data_dir or cfg.data.data_dir
    src = sources.make_source(cfg.data.name, split, data_dir)
    real, _ = src.get_batch(np.arange(len(src)))
    real = pool_flat(preprocess(real), args.pool)
    half = len(real) // 2
    n = min(args.image_n, half)
    perm = np.random.default_rng(args.seed).permutation(len(real))
    ref = real[perm[:half]][:n]
    floor_vals = []
    for s in range(args.floor_seeds):
        p = np.random.default_rng(args.seed + 1 + s).permutation(len(real))
        floor_vals.append(float(energy_distance(real[p[:n]], real[p[half:half + n]])))
    floor = {"mean": float(np.mean(floor_vals)), "std": float(np.std(floor_vals, ddof=1)),
             "values": floor_vals}
    print(f"images: {cfg.data.name}[{split}] {len(real)} held-out, n = {n}, pool {args.pool}; "
          f"floor {floor['mean']:.3e} +- {floor['std']:.3e}", flush=True)
    fd_fn, fd_features = None, None
    if args.feature_net:
        from jaxgen import metrics

        ext = metrics.load_extractor(args.feature_net)
        fd_features = ext.identifier
        ref_stats = metrics.reference_stats(cfg.data.name, split, ext, data_dir=data_dir)

        def fd_of(x):
            f = metrics.extract_features(ext, x)
            return metrics.frechet_distance(metrics.stats_from_features(f, ext.identifier),
                                            ref_stats).value

        fd_fn = fd_of
        print(f"FD on {ext.identifier} against {ref_stats.describe()}", flush=True)
    params = run.state.ema_params
    model_fn = family.model_fn(params)
    process, prediction = family.process, family.prediction
    discrete = bool(getattr(process, "discrete", False))
    spacing = args.image_spacing or ("trailing" if discrete else process.default_spacing)
    clip = cfg.sampler.clip_x0 if cfg.sampler.clip_x0 > 0 else None
    shape = tuple(family.data_shape)
    base = jax.random.key(args.seed)
    batch = min(args.image_batch, n)
    num_batches = -(-n // batch)

    def draw(method, steps):
        fn = jax.jit(lambda x, k: diffusion.sample(
            model_fn, process, x, k, method=method, num_steps=steps, prediction=prediction,
            spacing=spacing, clip_x0=clip))
        outs, t0 = [], time.perf_counter()
        for b in range(num_batches):
            x_T = diffusion.prior_noise(process, jax.random.fold_in(base, 10 + b),
                                        (batch,) + shape)
            outs.append(np.asarray(fn(x_T, jax.random.fold_in(base, 1000 + b))))
        x = np.concatenate(outs)[:n]
        wall = time.perf_counter() - t0
        out = {"ed": float(energy_distance(pool_flat(x, args.pool), ref)), "wall_s": wall}
        if fd_fn is not None:
            out["fd"] = float(fd_fn(x))
        return out

    methods = [m for m in args.image_methods.split(",") if m]
    nfes = sorted({int(v) for v in args.image_nfe.split(",")})
    rows = []
    for method in methods:
        for target in nfes:
            steps = steps_for(method, target)
            if discrete:
                steps = min(steps, process.num_timesteps)
            try:
                r = draw(method, steps)
            except ValueError as e:
                r = {"skipped": str(e).split("\n")[0]}
            rows.append({"method": method, "target_nfe": target, "steps": steps,
                         "nfe": diffusion.evaluations(method, steps), **r})
            print(f"  {method:15s} N={steps:5d} ED={r.get('ed', float('nan')): .3e} "
                  f"FD={r.get('fd', float('nan')):.2f} ({r.get('wall_s', 0):.1f} s)", flush=True)
    ref_ed = None
    if args.image_reference_steps:
        r = draw("ddpm", args.image_reference_steps)
        ref_ed = r["ed"]
        rows.append({"method": "ddpm", "target_nfe": args.image_reference_steps,
                     "steps": args.image_reference_steps,
                     "nfe": args.image_reference_steps, **r})
        nfes = sorted(set(nfes) | {args.image_reference_steps})
    thr = threshold(floor, ref_ed)
    reach = {m: min([r["nfe"] for r in rows if r["method"] == m
                     and r.get("ed", np.inf) <= thr], default=None) for m in methods}
    panel = {"process": f"{cfg.data.name} {cfg.diffusion.process}", "name": cfg.diffusion.process,
             "spacing": spacing, "prediction": prediction, "ddpm1000_ed": ref_ed,
             "threshold": thr, "rows": rows, "reach_nfe": reach}
    return {"checkpoint": args.checkpoint, "step": run.step, "dataset": cfg.data.name,
            "split": split, "n": n, "pool": args.pool, "clip_x0": clip,
            "fd_features": fd_features,
            "nfe_targets": nfes, "methods": methods, "floor": floor, "panels": [panel],
            "reference_label": (f"DDPM-{args.image_reference_steps}"
                                if args.image_reference_steps else "the floor"),
            "criterion": "ED <= max(ED of DDPM at --image-reference-steps, floor mean + 2 std)"}


# ---------------------------------------------------------------------------- main


def machine() -> dict:
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend()}


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t0 = time.perf_counter()
    if not args.skip_toy:
        result = toy_sweep(args)
        result.update(machine=machine(), time=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      wall_s=time.perf_counter() - t0, command=" ".join(sys.argv))
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        png = os.path.splitext(args.out)[0] + ".png"
        plot(result, png, f"2-D '{args.mixture}' mixture, exact denoiser, n = {args.n}")
        print()
        print(markdown(result))
        print(f"\nwrote {args.out} and {png} ({result['wall_s']:.0f} s)")
    if args.checkpoint:
        result = image_sweep(args)
        result.update(machine=machine(), time=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      command=" ".join(sys.argv))
        out = os.path.splitext(args.out)[0] + "_images.json"
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        png = os.path.splitext(out)[0] + ".png"
        title = (f"{result['dataset']} checkpoint step {result['step']}, n = {result['n']}, "
                 f"pool {args.pool}")
        plot(result, png, title, lo=1e-3, hi=10.0)
        # The run's own copy, which its report.md shows.
        run_png = plot(result, os.path.join(args.checkpoint, "quality_vs_steps.png"), title,
                       lo=1e-3, hi=10.0)
        if result["fd_features"]:
            plot_fd(result, os.path.splitext(out)[0] + "_fd.png", title)
            plot_fd(result, os.path.join(args.checkpoint, "quality_vs_steps_fd.png"), title)
        from jaxgen.train import report
        print()
        print(markdown(result))
        if result["fd_features"]:
            print()
            print(markdown_fd(result))
        print(f"\nwrote {out}, {png}, {run_png} and {report.write_report(args.checkpoint)}")
    elif not args.skip_toy:
        print("no --checkpoint given: the image (MNIST) table was not computed")


if __name__ == "__main__":
    main()
