"""KID: the U-statistic against a brute-force double loop; unbiasedness; detection."""

import itertools

import numpy as np
import pytest

from jaxgen.metrics import kid, mmd2_unbiased


def brute_mmd2(x, y, biased=False):
    """Pairwise sums with the kernel (x.y/d + 1)^3 written out, one pair at a time."""
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
    m, n = len(x), len(y)
    pairs = itertools.product(range(m), range(m)) if biased else itertools.permutations(range(m), 2)
    sxx = sum(k(x[i], x[j]) for i, j in pairs) / (m * m if biased else m * (m - 1))
    pairs = itertools.product(range(n), range(n)) if biased else itertools.permutations(range(n), 2)
    syy = sum(k(y[i], y[j]) for i, j in pairs) / (n * n if biased else n * (n - 1))
    sxy = sum(k(a, b) for a in x for b in y) / (m * n)
    return sxx + syy - 2 * sxy


def test_u_statistic_matches_a_brute_force_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((9, 4)), 1.3 * rng.standard_normal((7, 4)) + 0.5
    want = brute_mmd2(x, y)
    assert want > 0.1
    np.testing.assert_allclose(mmd2_unbiased(x, y), want, rtol=1e-12)


def test_kid_is_unbiased_under_equal_distributions_and_the_biased_version_is_not():
    rng = np.random.default_rng(1)
    reps, n, d = 400, 25, 4
    u, v = [], []
    for _ in range(reps):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        u.append(kid(x, y, num_subsets=1, subset_size=n).mean)
        v.append(brute_mmd2(x, y, biased=True) if len(v) < 40 else np.nan)
    u = np.array(u)
    # Mean of 400 independent draws: 4 standard errors is a >99.99% bound for mean 0.
    stderr = u.std(ddof=1) / np.sqrt(reps)
    assert abs(u.mean()) < 4 * stderr, (u.mean(), stderr)
    # The same bound rejects the V-statistic (diagonal kept): it is biased upwards by
    # ~(E k(x,x) - E k(x,x')) (1/m + 1/n), which is what the unbiased form removes.
    v = np.array(v[:40])
    assert v.mean() > 4 * v.std(ddof=1) / np.sqrt(len(v)) + 4 * stderr


def test_kid_is_positive_for_different_distributions_and_reports_counts():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((600, 8))
    y = rng.standard_normal((500, 8)) * 1.2 + 0.3
    r = kid(x, y, num_subsets=20, subset_size=200, label_x="fake", label_y="real")
    assert r.mean > 5 * r.std > 0
    assert (r.count_x, r.count_y, r.subset_size, r.num_subsets) == (600, 500, 200, 20)
    assert "n=600 fake" in r.description and "n=500 real" in r.description
    # deterministic given the seed, different subsets for another seed
    assert kid(x, y, num_subsets=3, subset_size=50).mean == kid(x, y, num_subsets=3,
                                                                 subset_size=50).mean
    assert kid(x, y, num_subsets=3, subset_size=50, seed=1).mean != kid(
        x, y, num_subsets=3, subset_size=50).mean


def test_kid_of_whole_sets_is_one_statistic_with_no_spread():
    # Subsets as large as both sets are all the same pair: one U-statistic, std NaN (not
    # a misleading 0), and the mean is that statistic.
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 4)), rng.standard_normal((300, 4)) + 0.5
    r = kid(x, y, num_subsets=50, subset_size=1000)
    assert r.num_subsets == 1 and r.subset_size == 300 and np.isnan(r.std)
    assert r.mean == pytest.approx(mmd2_unbiased(x, y))
    assert "one subset of 300" in r.description
    # A subset smaller than the sets gives a spread again.
    assert kid(x, y, num_subsets=10, subset_size=150).std > 0


def test_kid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one d"):
        kid(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        kid(np.zeros((1, 2)), np.zeros((5, 2)))
