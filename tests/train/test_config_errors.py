"""Bad configs: one line naming the field, the value and what is allowed; exit code 2;
nothing written."""

import concurrent.futures
import os

import pytest

from configs import ddpm_digits
from jaxgen.errors import ConfigError
from jaxgen.train import validation
from tests.train.test_end_to_end import run_cli

SMOKE = "--config=configs/ddpm_digits.py:smoke"

# (extra args, expected substring of the error line)
CASES = [
    (["--config.model.name=resnet"], "model.name='resnet': must be one of 'unet'"),
    (["--config.data.name=no_such_dataset"], "data: unknown TFDS dataset name 'no_such_dataset'"),
    (["--config.train.batch_size=0"], "train.batch_size=0: must be an integer >= 1"),
    (["--config.train.batch_size=-3"], "train.batch_size=-3"),
    (["--config.train.num_steps=0"], "train.num_steps=0"),
    (["--config.train.log_every=0"], "train.log_every=0"),
    (["--config.optim.learning_rate=-1.0"], "optim.learning_rate=-1.0: must be a number in (0.0"),
    (["--config.optim.name=sgd"], "optim.name='sgd': must be one of 'adam', 'adamw'"),
    (["--config.optim.ema_decay=1.0"], "optim.ema_decay=1.0"),
    (["--config.diffusion.prediction=noise"], "diffusion.prediction='noise'"),
    (["--config.diffusion.num_timesteps=0"], "diffusion.num_timesteps=0"),
    (["--config.model.num_groups=5"], "model.num_groups=5: must divide"),
    (["--config.model.attention=(True,)"], "model.attention=(True,): must be a tuple of 2"),
    (["--config.model.block_channels=(8,16,16,16,16)", "--config.model.attention=(0,0,0,0,0)"],
     "must divide the image size 8x8"),
    (["--config.sampler.method=rk4"], "sampler.method='rk4'"),
    (["--config.data.data_dir=/no/such/dir"], "data.data_dir='/no/such/dir'"),
    (["--config.train.batch_size=abc"], "train.batch_size"),
    (["--config.train.no_such_field=1"], "no_such_field"),
    (["--mode=fly"], "mode"),
]


def _check(result, expected, workdir):
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert result.returncode == 2, (expected, result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert expected in lines[0], (expected, lines[0])
    assert not os.path.exists(workdir), "a failed start must not write the workdir"


def test_bad_values_give_one_line_and_exit_code_2(tmp_path):
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for i, (extra, expected) in enumerate(CASES):
            workdir = str(tmp_path / f"w{i}")
            fut = pool.submit(run_cli, [SMOKE, f"--workdir={workdir}", *extra])
            jobs.append((fut, expected, workdir))
        for fut, expected, workdir in jobs:
            _check(fut.result(), expected, workdir)


def test_environment_dependent_errors(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    empty = tmp_path / "empty_data"
    empty.mkdir()
    cases = [
        # batch size must split evenly over the devices
        ([SMOKE, f"--workdir={tmp_path / 'd'}", "--config.train.batch_size=12"],
         {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
         "train.batch_size=12: must be divisible by the number of devices (8)", tmp_path / "d"),
        # a workdir below a regular file cannot be created
        ([SMOKE, f"--workdir={blocker / 'run'}"], None, "workdir=", blocker / "run"),
        # a TFDS dataset missing from data_dir
        ([SMOKE, f"--workdir={tmp_path / 'm'}", "--config.data.name=mnist",
          f"--config.data.data_dir={empty}"], None, "mnist", tmp_path / "m"),
        # an unknown config argument
        (["--config=configs/ddpm_digits.py:huge", f"--workdir={tmp_path / 'h'}"], None,
         "huge", tmp_path / "h"),
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futs = [(pool.submit(run_cli, args, env), exp, wd) for args, env, exp, wd in cases]
        for fut, expected, workdir in futs:
            _check(fut.result(), expected, str(workdir))


def test_validate_in_process_names_the_field():
    config = ddpm_digits.get_config("smoke")
    validation.validate(config)  # the shipped config is valid
    config.train.checkpoint_every = -1
    with pytest.raises(ConfigError) as e:
        validation.validate(config)
    assert e.value.field == "train.checkpoint_every" and e.value.value == -1
    assert "\n" not in str(e.value)
