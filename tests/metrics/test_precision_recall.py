"""k-NN precision/recall and density/coverage: brute force, identities, expectations."""

import numpy as np
import pytest

from jaxgen.metrics import density_coverage, knn_radii, precision_recall


def brute(real, fake, k_pr, k_dc):
    """All four metrics from full float64 distance matrices (Kynkaanniemi et al. 2019;
    Naeem et al. 2020), written without blocking."""
    d = lambda a, b: np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    drr, dff, dfr = d(real, real), d(fake, fake), d(fake, real)
    rad = lambda dm, k: np.sort(dm, axis=1)[:, k]  # column 0 is the point itself
    r3, f3, r5 = rad(drr, k_pr), rad(dff, k_pr), rad(drr, k_dc)
    precision = np.mean((dfr <= r3[None, :]).any(1))
    recall = np.mean((dfr.T <= f3[None, :]).any(1))
    density = (dfr <= r5[None, :]).sum() / (k_dc * len(fake))
    coverage = np.mean((dfr <= r5[None, :]).any(0))
    return precision, recall, density, coverage


def test_blocked_metrics_match_brute_force_with_padded_blocks():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((83, 5))
    fake = 0.8 * rng.standard_normal((71, 5)) + 0.6
    want = brute(real, fake, 3, 5)
    assert 0.1 < want[0] < 0.95 and 0.1 < want[1] < 0.95  # not trivially 0 or 1
    # 300 distances per block: 3-4 rows per block, so blocks are padded and many.
    pr = precision_recall(real, fake, max_block_elements=300)
    dc = density_coverage(real, fake, max_block_elements=300)
    got = (pr.precision, pr.recall, dc.density, dc.coverage)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got == (precision_recall(real, fake).precision, precision_recall(real, fake).recall,
                   density_coverage(real, fake).density, density_coverage(real, fake).coverage)


def test_knn_radii_exclude_the_point_itself():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(knn_radii(x, 1), np.array([1, 1, 4, 16.0]), rtol=1e-6)
    np.testing.assert_allclose(knn_radii(x, 2), np.array([9, 4, 9, 36.0]), rtol=1e-6)


def test_identical_sets():
    x = np.random.default_rng(1).standard_normal((300, 16)).astype(np.float32)
    pr = precision_recall(x, x)
    dc = density_coverage(x, x)
    assert pr.precision == 1.0 and pr.recall == 1.0 and dc.coverage == 1.0
    # Each real ball holds its own point and its k neighbours: (k+1)/k exactly (no ties).
    assert dc.density == pytest.approx(6 / 5, abs=1e-12)
    assert "n=300" in pr.description and "k=3" in pr.description


def test_density_and_coverage_expectations_for_equal_distributions():
    # For continuous P = Q, by exchangeability: E density = 1 and E coverage =
    # 1 - prod_{i=1..k} (N - i) / (N + M - i) (derived in Naeem et al. 2020).
    rng = np.random.default_rng(2)
    n = m = 1500
    k = 5
    real, fake = rng.standard_normal((n, 8)), rng.standard_normal((m, 8))
    dc = density_coverage(real, fake, k=k)
    expected_cov = 1 - np.prod([(n - i) / (n + m - i) for i in range(1, k + 1)])
    assert abs(dc.density - 1) < 0.08, dc
    assert abs(dc.coverage - expected_cov) < 0.015, (dc, expected_cov)


def test_precision_drops_as_fakes_leave_the_manifold():
    rng = np.random.default_rng(3)
    # real: a 2-D manifold (a plane) embedded in 10-D, plus slight thickness
    basis = np.linalg.qr(rng.standard_normal((10, 2)))[0].T
    real = rng.standard_normal((800, 2)) @ basis + 0.01 * rng.standard_normal((800, 10))
    normal = np.linalg.qr(np.concatenate([basis.T, rng.standard_normal((10, 1))], 1))[0][:, 2]
    on = rng.standard_normal((800, 2)) @ basis + 0.01 * rng.standard_normal((800, 10))
    precisions, densities = [], []
    for offset in (0.0, 0.05, 0.1, 0.3, 1.0):
        pr = precision_recall(real, on + offset * normal)
        dc = density_coverage(real, on + offset * normal)
        precisions.append(pr.precision)
        densities.append(dc.density)
    assert precisions[0] > 0.9 and precisions[-1] < 0.05, precisions
    assert all(a > b for a, b in zip(precisions, precisions[1:])), precisions
    assert all(a > b for a, b in zip(densities, densities[1:])), densities


def test_recall_drops_when_fakes_cover_only_part_of_the_data():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((1000, 3))
    half = rng.standard_normal((3000, 3))
    half = half[half[:, 0] > 0][:1000]  # a mode-dropping model: only x_0 > 0
    pr = precision_recall(real, half)
    dc = density_coverage(real, half)
    assert pr.precision > 0.9 and 0.3 < pr.recall < 0.75, pr
    assert 0.3 < dc.coverage < 0.75, dc


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="one D"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(np.zeros((3, 2)), 3)
    with pytest.raises(ValueError, match="NaN"):
        density_coverage(np.full((10, 2), np.nan), np.zeros((10, 2)))
