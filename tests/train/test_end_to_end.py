"""End to end: train, checkpoint, resume, data parallelism, and the command line."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import ddpm_digits
from jaxgen.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def run_cli(args, env=None, timeout=300):
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("JAX_PLATFORMS", "cpu")
    return subprocess.run([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def test_smoke_on_mock_mnist_trains_checkpoints_and_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    config = ddpm_digits.get_config("smoke")
    config.data.name = "mnist"
    config.data.split = "train"
    config.train.num_steps = 4
    config.train.sample_every = 2
    with tfds.testing.mock_data(num_examples=32):
        state = loop.train(config, workdir, quiet=True)
        assert int(state.step) == 4
        ckpts = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
        assert "4" in ckpts
        assert os.path.getsize(os.path.join(workdir, "samples.png")) > 0
        # intermediate grids every sample_every steps; the last step writes samples.png only
        assert os.listdir(os.path.join(workdir, "samples")) == ["step_0000002.png"]
        first = read_metrics(workdir)
        assert [m["step"] for m in first] == [2, 4]

        config.train.num_steps = 6
        state = loop.train(config, workdir, quiet=True)
    assert int(state.step) == 6
    steps = [m["step"] for m in read_metrics(workdir)]
    # the second invocation logged only steps 5-6: it resumed at 4, not at 0
    assert steps == [2, 4, 6], steps
    # samples decode to the data's shape (28x28 mnist, 4 samples)
    from PIL import Image
    img = np.asarray(Image.open(os.path.join(workdir, "samples.png")))
    assert img.ndim == 2 and img.shape[0] > 28


@pytest.mark.slow  # the fast suite resumes bitwise in test_reliability (toy MLP)
def test_resumed_run_equals_uninterrupted_run(tmp_path):
    """Params after 2+2 steps with a restart equal those of 4 straight steps."""
    config = ddpm_digits.get_config("smoke")
    config.train.num_steps = 4
    straight = loop.train(config, str(tmp_path / "a"), quiet=True)
    config.train.num_steps = 2
    loop.train(config, str(tmp_path / "b"), quiet=True)
    config.train.num_steps = 4
    resumed = loop.train(config, str(tmp_path / "b"), quiet=True)
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(straight.ema_params), jax.tree.leaves(resumed.ema_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # the fast suite's test_multihost covers 8 -> 2 -> 1 devices (toy MLP)
def test_eight_devices_give_the_same_losses_as_one(tmp_path):
    args = ["--config=configs/ddpm_digits.py:smoke", "--config.train.num_steps=6",
            "--config.train.log_every=1", "--config.train.batch_size=16"]
    losses = {}
    for n in (1, 8):
        workdir = str(tmp_path / f"dev{n}")
        env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        r = run_cli(args + [f"--workdir={workdir}"], env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        losses[n] = [m["loss"] for m in read_metrics(workdir)]
    assert len(losses[1]) == 6
    np.testing.assert_allclose(losses[8], losses[1], rtol=2e-5)
    # the losses move (the run trains), so equality is not trivially of constants
    assert len(set(np.round(losses[1], 6))) > 1


def test_cli_trains_then_samples_and_evaluates_and_load_returns_a_sampler(tmp_path):
    workdir = str(tmp_path / "cli")
    r = run_cli(["--config=configs/ddpm_digits.py:smoke", f"--workdir={workdir}"])
    assert r.returncode == 0, r.stderr[-3000:]
    os.remove(os.path.join(workdir, "samples.png"))
    r = run_cli([f"--workdir={workdir}", "--mode=sample", "--num_samples=9"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.path.exists(os.path.join(workdir, "samples.png"))
    r = run_cli(["--config=configs/ddpm_digits.py:smoke", f"--workdir={workdir}", "--mode=eval",
                 "--config.eval.likelihood=True"])
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads(open(os.path.join(workdir, "eval.json")).read())
    assert metrics["step"] == 4 and np.isfinite(metrics["loss"]) and metrics["loss"] > 0
    # The bound of a discrete (8-bit) likelihood is positive and is the sum of its parts.
    parts = metrics["bpd_prior"] + metrics["bpd_diffusion"] + metrics["bpd_decoder"]
    assert metrics["bpd"] > 0 and metrics["bpd"] == pytest.approx(parts, rel=1e-5)

    # What the command line trained, other code loads and samples from.
    import jaxgen
    run = jaxgen.load(workdir)
    assert run.step == 4
    x = run.sample(jax.random.key(0), 3)
    assert x.shape == (3, 8, 8, 1) and np.all(np.isfinite(x))
    with pytest.raises(FileNotFoundError):
        jaxgen.load(str(tmp_path / "nothing"))
