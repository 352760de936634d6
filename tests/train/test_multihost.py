"""Scale-out on JAX's runtime: two processes x 4 CPU devices (``jax.distributed`` on
localhost, gloo collectives) and FSDP over 4 devices train like one process with 8
data-parallel devices; a checkpoint written on 8 devices resumes on 2 and on 1; the step
function compiles once however long the run."""

import json

import os
import socket
import subprocess
import sys

import jax
import numpy as np

from configs import ddpm_toy
from jaxgen.train import loop
from tests.train.test_end_to_end import REPO, read_metrics, run_cli

# hidden_dim 64: weight matrices large enough to be split under FSDP.
ARGS = ["--config=configs/ddpm_toy.py:smoke", "--config.train.log_every=1",
        "--config.train.batch_size=16", "--config.eval.num_samples=0",
        "--config.model.hidden_dim=64"]


def devices(n):
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}


def losses(workdir):
    return [m["loss"] for m in read_metrics(workdir)]


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_meta(workdir):
    with open(os.path.join(workdir, "run.json")) as f:
        return json.load(f)


def test_multi_process_fsdp_and_resharded_resume_match_one_eight_device_run(tmp_path):
    # The reference: one process, 8 devices, 8 steps.
    ref_dir = str(tmp_path / "ref")
    r = run_cli(ARGS + ["--config.train.num_steps=8", f"--workdir={ref_dir}"], env=devices(8))
    assert r.returncode == 0, r.stderr[-3000:]
    ref = losses(ref_dir)
    assert len(ref) == 8 and len(set(np.round(ref, 6))) > 1  # the losses move

    # Two processes with 4 devices each, started together, 6 steps.
    mh_dir = str(tmp_path / "multihost")
    address = f"localhost:{free_port()}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", **devices(4))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "jaxgen.main", *ARGS, "--config.train.num_steps=6",
         f"--workdir={mh_dir}", f"--coordinator_address={address}", "--num_processes=2",
         f"--process_id={i}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    # Same global batches, same 8-device program: the losses of one 8-device process
    # (cross-process gloo reductions may sum in another order: a tolerance, not bits).
    np.testing.assert_allclose(losses(mh_dir), ref[:6], rtol=2e-5)
    # One set of logs and pictures (process 0), one checkpoint per step both wrote.
    assert [m["step"] for m in read_metrics(mh_dir)] == list(range(1, 7))
    assert os.path.exists(os.path.join(mh_dir, "samples.png"))
    assert "6" in os.listdir(os.path.join(mh_dir, "checkpoints"))

    # FSDP: the state split 4 ways (data 2 x fsdp 4), the same losses, less memory.
    fsdp_dir = str(tmp_path / "fsdp")
    r = run_cli(ARGS + ["--config.train.num_steps=6", "--config.train.fsdp=4",
                        f"--workdir={fsdp_dir}"], env=devices(8))
    assert r.returncode == 0, r.stderr[-3000:]
    np.testing.assert_allclose(losses(fsdp_dir), ref[:6], rtol=2e-5)
    fsdp, dp = run_meta(fsdp_dir), run_meta(ref_dir)
    assert fsdp["mesh"] == {"data": 2, "fsdp": 4} and dp["mesh"] == {"data": 8, "fsdp": 1}
    # The hidden matrices (most of the state) are split; biases and norms are not.
    assert fsdp["state_bytes_per_device"] < 0.5 * dp["state_bytes_per_device"]

    # Saved on 8 devices at step 3, resumed on 2 to step 6, then on 1 to step 8.
    topo_dir = str(tmp_path / "topology")
    for n, steps in ((8, 3), (2, 6), (1, 8)):
        r = run_cli(ARGS + [f"--config.train.num_steps={steps}", f"--workdir={topo_dir}"],
                    env=devices(n))
        assert r.returncode == 0, r.stderr[-3000:]
    assert [m["step"] for m in read_metrics(topo_dir)] == list(range(1, 9))
    np.testing.assert_allclose(losses(topo_dir), ref, rtol=2e-5)


def test_the_train_step_compiles_once_however_long_the_run(tmp_path):
    """Lowerings (every jit cache miss, persistent-cache hits included) of a 3-step and a
    9-step run are the same in number: nothing recompiles after the first step. (A first
    run lowers the module-level jitted helpers, so the two runs compared do the same.)"""
    lowered = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            lowered.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    counts = {}
    try:
        for steps in (2, 3, 9):
            config = ddpm_toy.get_config("smoke")
            config.train.num_steps = steps
            config.train.log_every = config.train.checkpoint_every = 1
            config.eval.num_samples = 0
            start = len(lowered)
            loop.train(config, str(tmp_path / f"run{steps}"), quiet=True)
            counts[steps] = len(lowered) - start
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert counts[3] > 0 and counts[9] == counts[3], counts
