"""The run report is rebuilt from a workdir's files: what was trained, the last logged
metrics, every evaluation, the pictures, and the samples written during training."""

import json
import os

import numpy as np
from PIL import Image

from configs import ddpm_digits
from jaxgen.train import checkpoint, report


def test_report_states_the_run_its_metrics_and_links_its_pictures(tmp_path):
    workdir = str(tmp_path)
    config = ddpm_digits.get_config()
    config.train.num_steps, config.train.batch_size = 300, 64
    checkpoint.save_config(workdir, config, {"example_shape": [8, 8, 1]})
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for step in (100, 200, 300):
            f.write(json.dumps({"step": step, "loss": 1.0 / step, "grad_norm": 0.5}) + "\n")
        f.write(json.dumps({"step": 300, "eval/fd": 12.5}) + "\n")
    with open(os.path.join(workdir, "eval.json"), "w") as f:
        json.dump({"step": 300, "fd": 12.345678, "bpd": 4.25, "reference": "digits test"}, f)
    for name in ("samples.png", "quality_vs_steps.png", os.path.join("samples", "step_0000100.png")):
        os.makedirs(os.path.dirname(os.path.join(workdir, name)), exist_ok=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(os.path.join(workdir, name))

    text = open(report.write_report(workdir)).read()
    assert "| steps x batch | 300 x 64 |" in text
    assert "| process | ddpm (linear) |" in text and "| prediction, weighting | eps, uniform |" in text
    assert "## Training (last logged step 300)" in text and "| loss | 0.003333 |" in text
    assert "| eval/fd | 12.5 |" in text
    assert "## Evaluation (`eval.json`)" in text and "| fd | 12.35 |" in text
    assert "| bpd | 4.25 |" in text and "| reference | digits test |" in text
    assert os.path.exists(os.path.join(workdir, report.CURVES_FILE))
    assert "![training curves](curves.png)" in text
    # samples.png first, then the other pictures; no absolute paths (the folder can move)
    assert text.index("![samples.png]") < text.index("![quality_vs_steps.png]")
    assert "[step_0000100.png](samples/step_0000100.png)" in text
    assert workdir not in text


def test_the_summary_names_what_defines_each_family():
    from configs import (autoencoder_mnist, iwae_mnist, pixelcnn_mnist, vqvae_mnist,
                         wgan_gp_mnist)
    from jaxgen.train.report import _summary

    def rows(module, arg=None):
        return "\n".join(_summary(module.get_config(arg).to_dict()))

    gan = rows(wgan_gp_mnist)
    assert "| family | gan |" in gan and "| loss | wgan_gp |" in gan
    assert f"| n_critic | {wgan_gp_mnist.get_config().gan.n_critic} |" in gan
    k = iwae_mnist.get_config().vae.num_samples
    assert k > 1 and f"| objective | IWAE bound L_{k} |" in rows(iwae_mnist)
    assert "| values per pixel | 256 |" in rows(pixelcnn_mnist, "256")
    assert "| values per pixel | 2 |" in rows(pixelcnn_mnist)
    assert "64 codes of 16 dims" in rows(vqvae_mnist)
    assert "| KL weight | 1e-06 |" in rows(autoencoder_mnist)
    assert "| process |" not in gan  # diffusion rows only for diffusion runs
