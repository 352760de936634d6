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
    (["--config.optim.name=sgd"], "optim.name='sgd': must be one of 'adam', 'adamw', 'rmsprop'"),
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
    (["--config.train.num_steps=1.5"], "--config.train.num_steps=1.5"),   # float for an int
    (["--config.data.split=validation"],
     "data: unknown split 'validation' for dataset 'digits'; available splits: all, train"),
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


def _set(field, value):
    """A config edit that bypasses ConfigDict's type check, as a config file that writes
    ``1e4`` for an int field (or '64' for a number) would."""
    def edit(config):
        node, *path = field.split(".")
        parent = config
        for part in [node] + path[:-1]:
            parent = parent[part]
        with config.ignore_type():
            parent[path[-1]] = value
    return edit


def _mlp(config):
    config.model.name = "mlp"
    config.model.hidden_dim = 33


# (edit of the smoke config, expected error line): checked in-process, since the CLI path
# (ConfigError -> one line, exit code 2, nothing written) is covered above.
IN_PROCESS = [
    (_set("train.num_steps", 1e4), "train.num_steps=10000.0: must be an integer >= 1"),
    (_set("sampler.num_steps", 2.5), "sampler.num_steps=2.5: must be an integer >= 0"),
    (_set("diffusion.num_timesteps", 20.0), "diffusion.num_timesteps=20.0: must be an integer"),
    (_set("train.batch_size", "64"), "train.batch_size='64': must be an integer >= 1"),
    (_set("train.batch_size", True), "train.batch_size=True: must be an integer >= 1"),
    (_set("optim.learning_rate", "1e-3"),
     "optim.learning_rate='1e-3': must be a number in (0.0, 10.0]"),
    (_set("model.block_channels", (8, 0)),
     "model.block_channels=(8, 0): must be a non-empty tuple of positive integers"),
    (_set("model.block_channels", ()), "model.block_channels=(): must be a non-empty tuple"),
    (_set("model.block_channels", (8.0, 16.0)), "model.block_channels=(8.0, 16.0): must be"),
    (_set("model.num_groups", 0), "model.num_groups=0: must be an integer >= 1"),
    (_set("sampler.num_steps", 21), "sampler.num_steps=21: must be in [0, 20]"),
    (_set("sampler.num_samples", 0), "sampler.num_samples=0: must be an integer >= 1"),
    (_set("train.keep_checkpoints", 0), "train.keep_checkpoints=0: must be an integer >= 1"),
    (_set("diffusion.beta_end", 1e-5), "diffusion.beta_end=1e-05: must be a number in [0.0001"),
    (_set("data.split", ""), "data.split='': must be a split string"),
    (_set("data.data_dir", __file__), "data.data_dir="),
    (_mlp, "model.hidden_dim=33: must be even"),
]


@pytest.mark.parametrize("edit,expected", IN_PROCESS, ids=[e for _, e in IN_PROCESS])
def test_bad_fields_in_process(tmp_path, edit, expected):
    config = ddpm_digits.get_config("smoke")
    edit(config)
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        validation.validate(config, str(workdir))
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not workdir.exists()


DATA_FITS = [
    # the UNet's 2**(levels - 1) downsampling must divide the image size
    ({"model.block_channels": (8, 16, 16, 16), "model.attention": (0, 0, 0, 0)}, (28, 28, 1),
     10, None, "model.block_channels=(8, 16, 16, 16): 4 levels downsample by 8, which must "
     "divide the image size 28x28"),
    ({}, (2,), 0, None, "data.name='digits': gives examples of shape (2,); the UNet needs "
     "images (H, W, C)"),
    ({"model.name": "mlp"}, (8, 8, 1), 10, None, "model.name='mlp': needs points (D,)"),
    ({"model.num_classes": 5}, (8, 8, 1), 10, None, "model.num_classes=5: must be 0 or 10"),
    ({"model.num_classes": 10}, (8, 8, 1), 0, None, "model.num_classes=10: must be 0"),
    # grayscale data for a run trained on RGB images (the config has no channel count)
    ({}, (8, 8, 1), 10, (8, 8, 3), "data.name='digits': gives 1-channel images (8, 8, 1), "
     "but the run in the workdir was trained on 3-channel images (8, 8, 3)"),
    ({}, (16, 16, 1), 10, (8, 8, 1), "gives examples of shape (16, 16, 1), but the run in "
     "the workdir was trained on (8, 8, 1)"),
]


@pytest.mark.parametrize("fields,shape,classes,trained,expected", DATA_FITS,
                         ids=[c[-1][:40] for c in DATA_FITS])
def test_data_that_does_not_fit_the_model(fields, shape, classes, trained, expected):
    config = ddpm_digits.get_config("smoke")
    for field, value in fields.items():
        _set(field, value)(config)
    with pytest.raises(ConfigError) as e:
        validation.check_data_fits(config, shape, classes, trained_shape=trained)
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)
    validation.check_data_fits(ddpm_digits.get_config("smoke"), (8, 8, 1), 10,
                               trained_shape=(8, 8, 1))  # what fits passes


def test_trained_shape_is_read_from_the_run(tmp_path):
    from jaxgen.train import checkpoint
    config = ddpm_digits.get_config("smoke")
    assert validation.trained_example_shape(str(tmp_path / "new")) is None
    checkpoint.save_config(str(tmp_path), config, {"example_shape": [8, 8, 3]})
    assert validation.trained_example_shape(str(tmp_path)) == (8, 8, 3)


def test_inference_overrides_may_reach_into_a_fixed_section_only_where_allowed():
    from configs import vae_mnist
    from jaxgen import api

    saved = vae_mnist.get_config("smoke")
    # The VAE's likelihood estimate may change after training ...
    out = api.inference_config(saved, {"vae": {"eval_num_samples": 500}})
    assert out.vae.eval_num_samples == 500 and out.vae.beta == saved.vae.beta
    # ... what defines the trained model may not.
    with pytest.raises(ConfigError, match="vae.beta=2.0: must equal"):
        api.inference_config(saved, {"vae": {"beta": 2.0}})


def test_a_run_saved_before_a_model_field_existed_loads_with_todays_config():
    from configs import ddpm_digits
    from jaxgen import api

    given = ddpm_digits.get_config("smoke")
    saved = api._plain(given)
    del saved["model"]["remat"]            # as written before the field existed
    out = api.inference_config(saved, given)
    assert out.model.remat is False and out.model.block_channels == list(
        given.model.block_channels)
    # A field the run does have must still match.
    given.model.num_groups = 4
    with pytest.raises(ConfigError, match="model.num_groups=4: must equal"):
        api.inference_config(saved, given)
