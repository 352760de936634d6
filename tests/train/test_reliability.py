"""Training loses nothing: SIGKILL at any moment (inside an asynchronous save too),
SIGTERM/SIGINT, non-finite updates and damaged checkpoints; and trained runs used with an
older config or another sampler.

Faults are injected through JAXGEN_FAULTS (jaxgen/train/faults.py). The runs are the
toy rectified-flow smoke config, so a command-line run takes seconds; they share the
session's persistent XLA cache (tests/conftest.py).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

import jaxgen
from configs import rf_toy
from jaxgen.errors import ConfigError
from jaxgen.train import checkpoint, faults, loop, validation
from jaxgen.train import state as state_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHORT = 10   # steps; the smoke config logs and saves every 2
LONG = 200   # steps, saved and logged every 10: long enough to signal from outside
SHORT_ARGS = ["--config=configs/rf_toy.py:smoke", f"--config.train.num_steps={SHORT}"]
LONG_ARGS = ["--config=configs/rf_toy.py:smoke", f"--config.train.num_steps={LONG}",
             "--config.train.checkpoint_every=10", "--config.train.log_every=10"]


def short_config():
    config = rf_toy.get_config("smoke")
    config.train.num_steps = SHORT
    return config


def long_config():
    config = rf_toy.get_config("smoke")
    config.train.num_steps = LONG
    config.train.checkpoint_every = 10
    config.train.log_every = 10
    return config


def env_with(fault_spec=None):
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.pop(faults.ENV, None)
    if fault_spec:
        env[faults.ENV] = fault_spec
    return env


def cli(args, fault_spec=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO,
                          env=env_with(fault_spec), capture_output=True, text=True,
                          timeout=timeout)


def start(args, fault_spec=None):
    return subprocess.Popen([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO,
                            env=env_with(fault_spec), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def ckpt_dir(workdir):
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def committed(workdir):
    """Steps with a committed checkpoint (orbax renames a finished save to its step)."""
    d = ckpt_dir(workdir)
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def unfinished(workdir):
    """Temporary directories of saves that never finished."""
    return [n for n in os.listdir(ckpt_dir(workdir)) if "tmp" in n]


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def curves(workdir):
    """What training computed, per logged step (the timing column left out)."""
    return [{k: v for k, v in m.items() if k != "steps_per_sec"} for m in read_metrics(workdir)]


def assert_bitwise_equal(a, b):
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def copy_run(src, dst, upto=None):
    """A copy of the run ``src`` with only its checkpoints up to step ``upto``."""
    shutil.copytree(src, dst)
    for step in committed(dst):
        if upto is not None and step > upto:
            shutil.rmtree(os.path.join(ckpt_dir(dst), str(step)))
    return str(dst)


def wait_for(predicate, proc, what, timeout=240):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}: "
                                 f"{proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def short_ref(tmp_path_factory):
    """An uninterrupted run of SHORT steps that keeps every checkpoint: (workdir, state)."""
    workdir = str(tmp_path_factory.mktemp("short_ref") / "run")
    config = short_config()
    config.train.keep_checkpoints = 100  # which checkpoints are kept does not change training
    return workdir, loop.train(config, workdir, quiet=True)


def state_at(ref_workdir, step, scratch):
    """The TrainState the reference run saved at ``step``."""
    return jaxgen.load(copy_run(ref_workdir, scratch, upto=step)).state


def test_runs_killed_after_a_step_and_inside_a_save_resume_bitwise(tmp_path, short_ref):
    ref_dir, ref_state = short_ref
    workdir = str(tmp_path / "run")
    args = SHORT_ARGS + [f"--workdir={workdir}"]

    r = cli(args, "kill_after_step=3")
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    # The save of step 2 is asynchronous: the kill may come before orbax committed it.
    assert committed(workdir) in ([], [2])
    first = committed(workdir)

    r = cli(args, "kill_in_save=6")
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert ("resuming from step 2" in r.stdout) == bool(first)
    # A save starts only once the previous one is committed: 2 and 4 are on disk.
    # Step 6's arrays were written but orbax never committed the save; training went on
    # meanwhile and logged steps that the next run must compute (and log) again.
    assert committed(workdir) == [2, 4]
    [tmp] = unfinished(workdir)
    assert tmp.startswith("6.") and os.listdir(os.path.join(ckpt_dir(workdir), tmp, "state"))
    assert read_metrics(workdir)[-1]["step"] >= 6

    r = cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from step 4" in r.stdout
    assert unfinished(workdir) == []
    assert committed(workdir) == [6, 8, 10]  # train.keep_checkpoints = 3
    # params, optimizer state, EMA and step; RNG and data position follow from the step
    assert_bitwise_equal(jaxgen.load(workdir).state, ref_state)
    # one line per logged step, with the values the uninterrupted run logged
    assert curves(workdir) == curves(ref_dir)


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("long_ref") / "run")
    return workdir, loop.train(long_config(), workdir, quiet=True)


def test_sigterm_then_sigkill_from_outside_then_resume_bitwise(tmp_path, long_ref):
    ref_dir, ref_state = long_ref
    workdir = str(tmp_path / "run")
    args = LONG_ARGS + [f"--workdir={workdir}"]
    # The pause only guarantees that the signal comes before the run's end; where it
    # lands (inside a step, a log line or a save) is up to the scheduler.
    backstop = f"pause_after_step={LONG - 10}"

    proc = start(args, backstop)
    wait_for(lambda: committed(workdir), proc, "a checkpoint")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    m = re.fullmatch(r"SIGTERM: stopped at step (\d+) after saving checkpoint (\S+); "
                     r"rerun the same command to continue", out.strip().splitlines()[-1])
    assert m, out
    stopped = int(m[1])
    assert m[2] == os.path.join(ckpt_dir(workdir), str(stopped))
    assert committed(workdir)[-1] == stopped and unfinished(workdir) == []

    proc = start(args, backstop)
    wait_for(lambda: committed(workdir)[-1] > stopped, proc, "a new checkpoint")
    proc.kill()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert f"resuming from step {stopped}" in out

    r = cli(args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert unfinished(workdir) == []
    assert_bitwise_equal(jaxgen.load(workdir).state, ref_state)
    assert curves(workdir) == curves(ref_dir)


def test_sigint_saves_the_current_step_and_the_run_continues_exactly(tmp_path, monkeypatch,
                                                                    short_ref):
    _, ref_state = short_ref
    workdir = str(tmp_path / "run")
    handler = signal.getsignal(signal.SIGINT)
    monkeypatch.setenv(faults.ENV, "sigint_after_step=3")
    with pytest.raises(loop.Preempted) as info:
        loop.train(short_config(), workdir, quiet=True)
    assert str(info.value) == (f"SIGINT: stopped at step 3 after saving checkpoint "
                               f"{ckpt_dir(workdir)}/3; rerun the same command to continue")
    assert committed(workdir) == [2, 3]  # step 3 is not a checkpoint step of the config
    assert signal.getsignal(signal.SIGINT) is handler

    # Checkpoints saved before the loop's counters were saved beside the state still resume.
    shutil.rmtree(os.path.join(ckpt_dir(workdir), "3", checkpoint.LOOP_ITEM))
    monkeypatch.delenv(faults.ENV)
    assert_bitwise_equal(loop.train(short_config(), workdir, quiet=True), ref_state)


def test_nan_stops_the_run_naming_the_step_and_the_last_good_checkpoint(tmp_path, short_ref):
    ref_dir, _ = short_ref
    workdir = str(tmp_path / "run")
    # The guard is read at log/checkpoint boundaries only: the NaN of update 3 is seen at 4.
    r = cli(SHORT_ARGS + [f"--workdir={workdir}"], "nan_at_step=3")
    assert r.returncode == 1, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: non-finite loss or gradients at step 3; last good checkpoint: "
        f"{ckpt_dir(workdir)}/2 (train.on_nonfinite='skip' skips such steps)")
    assert committed(workdir) == [2]  # step 4 came after the NaN and was not saved
    assert_bitwise_equal(jaxgen.load(workdir).state, state_at(ref_dir, 2, tmp_path / "ref2"))


def test_skip_drops_the_update_and_counts_it(tmp_path, monkeypatch, capsys, short_ref):
    ref_dir, _ = short_ref
    workdir = str(tmp_path / "run")
    config = short_config()
    config.train.on_nonfinite = "skip"
    monkeypatch.setenv(faults.ENV, "nan_at_step=3,sigint_after_step=3")
    with pytest.raises(loop.Preempted):
        loop.train(config, workdir, quiet=True)
    assert ("warning: skipped 1 update(s) with non-finite loss or gradients by step 3 "
            "(1 in all)") in capsys.readouterr().err
    after = jaxgen.load(workdir).state
    before = state_at(ref_dir, 2, tmp_path / "ref2")
    assert int(after.step) == 3  # the step (data position) moved on past the bad batch ...
    assert_bitwise_equal(after.replace(step=before.step), before)  # ... nothing else did

    monkeypatch.delenv(faults.ENV)
    state = loop.train(config, workdir, quiet=True)
    assert int(state.step) == SHORT
    rows = read_metrics(workdir)
    # the count comes back with the checkpoint of step 3
    assert [(m["step"], m["skipped_steps"]) for m in rows] == [(2, 0), (4, 1), (6, 1), (8, 1),
                                                                (10, 1)]
    assert all(np.isfinite(m["loss"]) for m in rows)


@pytest.mark.parametrize("reports_grad_norm", [True, False])
def test_guard_drops_an_update_with_non_finite_gradients(reports_grad_norm):
    tx = optax.adam(0.1)

    def train_step(state, batch, rng):  # the loss stays finite; only the gradient is bad
        grads = {"w": batch["g"]}
        metrics = {"loss": jnp.float32(1.0)}
        if reports_grad_norm:
            metrics["grad_norm"] = optax.global_norm(grads)
        return state.apply_gradients(grads, tx, 0.9), metrics

    step = jax.jit(state_lib.guard_nonfinite(train_step))
    state = state_lib.TrainState.create({"w": jnp.ones(3)}, tx)
    guard = state_lib.init_guard(skipped_steps=5)
    good = {"g": jnp.ones(3)}
    bad = {"g": jnp.array([1.0, jnp.inf, 1.0])}
    state, guard, _ = step(state, guard, good, None)
    after_one = state
    state, guard, _ = step(state, guard, bad, None)
    assert int(state.step) == 2 and int(guard["first_bad"]) == 2 and int(guard["skipped"]) == 6
    assert_bitwise_equal(state.replace(step=after_one.step), after_one)
    state, guard, _ = step(state, guard, good, None)
    assert int(guard["first_bad"]) == 2 and int(guard["skipped"]) == 6
    assert not np.array_equal(state.params["w"], after_one.params["w"])  # training goes on


def test_on_nonfinite_is_validated():
    config = short_config()
    config.train.on_nonfinite = "ignore"
    with pytest.raises(ConfigError, match=r"train.on_nonfinite='ignore': must be one of "
                                          r"'stop', 'skip'"):
        validation.validate(config)


def test_a_state_with_nan_is_never_saved(tmp_path, short_ref):
    state = short_ref[1]
    state = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
    mngr = checkpoint.manager(str(tmp_path), keep=3)
    with pytest.raises(FloatingPointError, match="refusing to save step 10"):
        checkpoint.save(mngr, state)
    mngr.close()
    assert committed(str(tmp_path)) == [] and unfinished(str(tmp_path)) == []


def test_the_host_finiteness_check_agrees_with_the_jitted_one():
    """Checkpoints are checked shard by shard on the host; the answer must be the jitted
    reduction's for every dtype, a NaN or Inf in any one element, and integer leaves."""
    base = {"w": jnp.ones((4, 3)), "h": jnp.ones((5,), jnp.bfloat16),
            "n": jnp.arange(3), "a": np.ones((2,), np.float32)}
    cases = [base]
    for key, bad in (("w", np.nan), ("h", np.inf), ("a", -np.inf)):
        tree = dict(base)
        tree[key] = jnp.asarray(tree[key]).at[-1].set(bad)
        cases.append(tree)
    for tree in cases:
        assert checkpoint._all_finite(tree) == bool(checkpoint._all_finite_on_device(tree))
    assert checkpoint._all_finite(cases[0]) and not any(map(checkpoint._all_finite, cases[1:]))


def _truncate_arrays(step_dir):
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)


def _delete_array_files(step_dir):
    data = os.path.join(step_dir, "state", "d")
    for name in os.listdir(data):
        os.remove(os.path.join(data, name))


@pytest.mark.parametrize("damage", [_truncate_arrays, _delete_array_files],
                         ids=["truncated", "deleted"])
def test_damaged_latest_checkpoint_is_passed_over(tmp_path, capsys, short_ref, damage):
    ref_dir, ref_state = short_ref
    workdir = copy_run(ref_dir, tmp_path / "run", upto=6)  # as if stopped at step 6
    six = os.path.join(ckpt_dir(workdir), "6")
    damage(six)
    # A reader passes over it too, but moves nothing (a trainer may own the directory).
    assert jaxgen.load(workdir).step == 4 and os.path.isdir(six)
    capsys.readouterr()

    state = loop.train(short_config(), workdir, quiet=True)
    # one line, not the tracebacks of orbax's aborted reads
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"warning: checkpoint {six} cannot be restored (")
    assert warning.endswith(f"moved to {six}.damaged; using step 4 instead")
    assert os.path.isdir(six + ".damaged")  # kept for inspection, out of orbax's way
    assert_bitwise_equal(state, ref_state)


def test_no_readable_checkpoint_stops_with_exit_2_unless_fresh_start_allowed(tmp_path,
                                                                           short_ref):
    ref_dir, ref_state = short_ref
    workdir = copy_run(ref_dir, tmp_path / "run", upto=4)
    for step in (2, 4):
        _truncate_arrays(os.path.join(ckpt_dir(workdir), str(step)))
    args = SHORT_ARGS + [f"--workdir={workdir}"]
    r = cli(args)
    assert r.returncode == 2, r.stderr[-3000:]
    [line] = r.stderr.strip().splitlines()
    assert line.startswith(f"error: no checkpoint in {ckpt_dir(workdir)} can be restored "
                           "(step 4: ")
    assert "; step 2: " in line
    assert line.endswith("; rerun with --allow_fresh_start to train from step 0")
    assert committed(workdir) == [2, 4]  # nothing moved without being asked

    r = cli(args + ["--allow_fresh_start"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "starting from step 0" in r.stderr
    assert sorted(n for n in os.listdir(ckpt_dir(workdir)) if "damaged" in n) == [
        "2.damaged", "4.damaged"]
    assert_bitwise_equal(jaxgen.load(workdir).state, ref_state)
    assert curves(workdir) == curves(ref_dir)


def test_load_fills_fields_missing_from_an_older_config(tmp_path, short_ref):
    workdir = copy_run(short_ref[0], tmp_path / "run")
    path = os.path.join(workdir, checkpoint.CONFIG_FILE)
    with open(path) as f:
        saved = json.load(f)
    # fields that runs saved before they existed lack
    del saved["train"]["on_nonfinite"], saved["sampler"]["guidance_weight"]
    del saved["diffusion"]["time_shift"]
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(AttributeError):  # what load() did before filling defaults
        loop.make_family(checkpoint.load_config(workdir, fill_defaults=False), (2,))

    run = jaxgen.load(workdir)
    assert (run.config.train.on_nonfinite, run.config.sampler.guidance_weight,
            run.config.diffusion.time_shift) == ("stop", 0.0, 1.0)
    assert run.config.sampler.num_steps == 3  # saved values win over base defaults (100)
    assert run.step == SHORT
    assert np.all(np.isfinite(run.sample(jax.random.key(0), 4)))


def test_sampler_can_change_at_sampling_time_but_the_model_cannot(tmp_path, short_ref):
    workdir = copy_run(short_ref[0], tmp_path / "run")
    # (After 10 steps the learnt velocity barely depends on t, so the number of Euler
    # steps hardly moves the samples; clipping the x_0 estimate does.)
    r = cli([f"--workdir={workdir}", "--mode=sample", "--config=configs/rf_toy.py:smoke",
             "--config.sampler.num_steps=7", "--config.sampler.clip_x0=0.5",
             "--num_samples=64"])
    assert r.returncode == 0, r.stderr[-3000:]
    written = np.asarray(Image.open(os.path.join(workdir, "samples.png")))

    changed = jaxgen.load(workdir, overrides={"sampler": {"num_steps": 7, "clip_x0": 0.5}})
    assert changed.family.sampler_kwargs()["num_steps"] == 7
    expected = changed.save_samples(str(tmp_path / "expected.png"), 64)
    default = jaxgen.load(workdir).save_samples(str(tmp_path / "default.png"), 64)
    np.testing.assert_array_equal(written, np.asarray(Image.open(expected)))
    assert not np.array_equal(written, np.asarray(Image.open(default)))

    r = cli([f"--workdir={workdir}", "--mode=sample", "--config=configs/rf_toy.py:smoke",
             "--config.model.hidden_dim=32"])
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.hidden_dim=32: must equal 16, the value the run was "
                           "trained with (family, model, "), last
    assert "cannot change after training; seed, sampler, " in last
    with pytest.raises(ConfigError, match="diffusion.process='ddpm': must equal "
                                          "'rectified_flow'"):
        jaxgen.load(workdir, overrides={"diffusion": {"process": "ddpm"}})
    with pytest.raises(ConfigError, match="sampler.num_stepz=7: is not a field"):
        jaxgen.load(workdir, overrides={"sampler": {"num_stepz": 7}})
    with pytest.raises(ConfigError, match="sampler.method='pc'"):  # validated like --config
        jaxgen.load(workdir, overrides={"sampler": {"method": "pc"}})
