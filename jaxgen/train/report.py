"""A run's ``report.md``: what was trained, its curves, pictures and final metrics.

The report is rebuilt from the workdir's files alone (config.json, metrics.jsonl,
eval*.json, PNGs), so it can be regenerated at any time:

  python -m jaxgen.train.report runs/x
"""

from __future__ import annotations

import glob
import json
import os
import sys

from jaxgen import viz
from jaxgen.train import checkpoint

REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _summary(config: dict) -> list[str]:
    data, model = config.get("data", {}), config.get("model", {})
    train = config.get("train", {})
    rows = [("family", config.get("family")),
            ("data", f"{data.get('name')} split {data.get('split')!r}"),
            ("model", f"{model.get('name')} {model.get('block_channels', '')}"
             if model.get("name") == "unet" else model.get("name")),
            ("steps x batch", f"{train.get('num_steps')} x {train.get('batch_size')}")]
    rows += _family_rows(config)
    return [f"| {k} | {v} |" for k, v in rows if v is not None]


def _family_rows(config: dict) -> list[tuple[str, object]]:
    """What defines a run of its family, beyond data, model and length."""
    family, sec = config.get("family"), lambda name: config.get(name, {})  # noqa: E731
    smp = sec("sampler")
    if family == "diffusion":
        diff = sec("diffusion")
        return [("process", f"{diff.get('process')} ({diff.get('schedule')})"
                 if diff.get("process") == "ddpm" else diff.get("process")),
                ("prediction, weighting", f"{diff.get('prediction')}, {diff.get('weighting')}"),
                ("sampler", f"{smp.get('method')}, {smp.get('num_steps') or 'all'} steps")]
    if family == "vae":
        v = sec("vae")
        k = v.get("num_samples", 1)
        return [("likelihood", v.get("likelihood")), ("latent dim", v.get("latent_dim")),
                ("objective", "ELBO" if k == 1 else f"IWAE bound L_{k}"),
                ("beta (KL weight)", v.get("beta"))]
    if family == "gan":
        g = sec("gan")
        return [("loss", g.get("loss")), ("players", g.get("arch")),
                ("n_critic", g.get("n_critic")),
                ("learning rates (G, D)", f"{sec('optim').get('learning_rate')}, "
                                          f"{g.get('d_learning_rate')}")]
    if family == "autoregressive":
        return [("values per pixel", sec("ar").get("num_levels")),
                ("sampler", f"temperature {smp.get('temperature')}, top-k "
                            f"{smp.get('top_k') or 'off'}")]
    if family == "vqvae":
        vq = sec("vq")
        return [("codebook", f"{vq.get('num_codes')} codes of {vq.get('code_dim')} dims, "
                             f"update '{vq.get('codebook_update')}'"),
                ("commitment", vq.get("commitment"))]
    if family == "vq_prior":
        return [("VQ-VAE run", sec("prior").get("vqvae_workdir"))]
    if family == "autoencoder":
        a = sec("autoencoder")
        return [("latent", f"downsampling {a.get('downsample_factor')}, "
                           f"{a.get('latent_channels')} channels"),
                ("KL weight", a.get("kl_weight")),
                ("discriminator weight", a.get("disc_weight"))]
    return []


def _metric_table(metrics: dict) -> list[str]:
    rows = ["| metric | value |", "|---|---|"]
    rows += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if not isinstance(v, (dict, list))]
    return rows


def write_report(workdir: str) -> str:
    """Writes workdir/report.md (and workdir/curves.png) and returns the report's path.

    Links are relative, so the folder can be moved or published as it is.
    """
    def rel(p):
        return os.path.relpath(p, workdir)

    lines = [f"# Run report: `{os.path.basename(os.path.abspath(workdir))}`", ""]
    if os.path.exists(os.path.join(workdir, checkpoint.CONFIG_FILE)):
        # Fields newer than the run take the defaults that keep its behaviour.
        config = json.loads(checkpoint.load_config(workdir).to_json_best_effort())
        lines += ["| | |", "|---|---|", *_summary(config), ""]
    records = viz.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    if records:
        last = records[-1]
        lines += [f"## Training (last logged step {last['step']})", ""]
        curves = viz.plot_curves(records, os.path.join(workdir, CURVES_FILE))
        if curves:
            lines += [f"![training curves]({rel(curves)})", ""]
        lines += _metric_table({k: v for k, v in last.items() if k != "step"}) + [""]
    for path in sorted(glob.glob(os.path.join(workdir, "eval*.json"))):
        with open(path) as f:
            metrics = json.load(f)
        lines += [f"## Evaluation (`{rel(path)}`)", ""]
        lines += _metric_table(metrics) + [""]
        notes = {k: v for k, v in metrics.items() if isinstance(v, dict)}
        for k, v in notes.items():
            lines += [f"- {k}: " + ", ".join(f"{a}={_fmt(b)}" for a, b in v.items())]
        if notes:
            lines += [""]
    pictures = [p for p in [os.path.join(workdir, "samples.png")] if os.path.exists(p)]
    pictures += sorted(glob.glob(os.path.join(workdir, "*.png")))
    pictures = [p for p in dict.fromkeys(pictures) if os.path.basename(p) != CURVES_FILE]
    if pictures:
        lines += ["## Pictures", ""]
        lines += [f"**{rel(p)}**\n\n![{rel(p)}]({rel(p)})\n" for p in pictures]
    progress = sorted(glob.glob(os.path.join(workdir, "samples", "step_*.png")))
    if progress:
        lines += ["## Samples during training", ""]
        lines += [f"- [{os.path.basename(p)}]({rel(p)})" for p in progress] + [""]
    path = os.path.join(workdir, REPORT_FILE)
    checkpoint.write_atomic(path, "\n".join(lines).rstrip() + "\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m jaxgen.train.report WORKDIR")
    print(write_report(sys.argv[1]))
