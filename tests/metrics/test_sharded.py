"""Sharded evaluation: generation, feature extraction and the metrics give the same
numbers on 1 and 8 (forced host) devices."""

import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(REPO, "tests", "metrics", "sharded_worker.py")


def run_worker(num_devices, out):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}")
    r = subprocess.run([sys.executable, WORKER, str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(np.load(out))


def test_one_and_eight_devices_agree(tmp_path):
    one = run_worker(1, tmp_path / "one.npz")
    eight = run_worker(8, tmp_path / "eight.npz")
    assert int(one["devices"]) == 1 and int(eight["devices"]) == 8
    assert str(one["hash"]) == str(eight["hash"])  # the same extractor in both processes
    # Not bitwise: every device runs the same program on 32 images, but jaxgen compiles
    # it with XLA:CPU's multi-threaded (Eigen) convolutions (jaxgen.core.xla_options),
    # which split their work over the host's thread pool, shared by eight device programs
    # at once here; the last image of a device batch then differs in the last float32 bit
    # (measured: max 1.2e-7 on features of size ~0.4; bitwise equal with XLA's default
    # single-threaded convolutions). The host accumulates the float64 statistics in fixed
    # 2048-row blocks whatever the device count: they agree to ~1e-10, FD to ~1e-11.
    # A bug in the sharding (a wrong, dropped or duplicated row) moves features by O(0.1).
    np.testing.assert_allclose(eight["features"], one["features"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(eight["mean"], one["mean"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(eight["cov"], one["cov"], rtol=0, atol=1e-9)
    assert float(one["fd"]) > 0  # two different halves of the data
    assert float(eight["fd"]) == pytest.approx(float(one["fd"]), rel=1e-7)
    # Generation split over the mesh: each sample's noise depends on its position only,
    # so the samples, and the metrics computed from them, do not depend on the devices.
    # Not bitwise: a device's matmuls run on 2 rows instead of 16, and XLA:CPU sums
    # them in another order (~1e-6 apart after 20 network calls); noise that depended
    # on the device count would move samples by O(1).
    assert eight["samples"].shape == (40, 2) and np.all(np.isfinite(eight["samples"]))
    np.testing.assert_allclose(eight["samples"], one["samples"], rtol=1e-5, atol=1e-5)
    for key in ("energy_distance", "sliced_wasserstein"):
        assert float(eight[key]) == pytest.approx(float(one[key]), rel=1e-4, abs=1e-6)
