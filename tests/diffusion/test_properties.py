"""Property tests (hypothesis) for the pure diffusion math.

Over the valid domain of every process and schedule: alpha, sigma, their time derivatives
and the noise-to-signal ratio are finite, and the ratio grows with t; ``t_from_ratio``
inverts ``ratio``; every target converts to every other and back; loss weights and
losses are finite and non-negative; the Gaussian KL is >= 0 and 0 for equal arguments.
Outside the domain, the documented ValueError is raised.

Every jitted function is compiled once, on arrays of a fixed shape, and reused for all
examples; the examples are derandomized so that the suite is reproducible.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxgen import diffusion
from jaxgen.diffusion import targets
from jaxgen.core.gaussians import normal_kl

PROPS = settings(max_examples=30, deadline=None, database=None, derandomize=True)
N = 16  # values per example: one compiled shape for every example

CONTINUOUS = {"vp": diffusion.VPProcess(), "ve": diffusion.VEProcess(),
              "rf": diffusion.RectifiedFlow(), "edm": diffusion.EDMProcess()}
DISCRETE = {f"ddpm-{s}": diffusion.ddpm_process(s) for s in diffusion.SCHEDULES}


def _float32(lo, hi):
    """float32 values in [lo, hi] (the ends rounded inwards to float32)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    lo32 = lo32 if lo32 >= lo else np.nextafter(lo32, np.float32(np.inf))
    hi32 = hi32 if hi32 <= hi else np.nextafter(hi32, np.float32(-np.inf))
    return st.floats(float(lo32), float(hi32), width=32)


def _floats(lo, hi):
    """Arrays of N float32 values in [lo, hi]."""
    return hnp.arrays(np.float32, (N,), elements=_float32(lo, hi))


def _time_range(process):
    """The finite part of the domain (VE: t -> -inf is clean data; -30 is sigma ~ 1e-113,
    zero in float32)."""
    lo, hi = process.domain()
    return max(lo, -30.0), hi


# --- processes ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _coefficients(name):
    process = CONTINUOUS[name]

    @jax.jit
    def fn(t):
        da, ds = process.derivatives(t)
        return process.alpha(t), process.sigma(t), da, ds, process.ratio(t)

    return fn


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_coefficients_are_finite_and_ratio_increases(name):
    process = CONTINUOUS[name]
    lo, hi = _time_range(process)

    @PROPS
    @given(t=_floats(lo, hi))
    def check(t):
        t = np.sort(t)
        a, s, da, ds, ratio = map(np.asarray, _coefficients(name)(t))
        for label, v in (("alpha", a), ("sigma", s), ("dalpha", da)):
            assert np.all(np.isfinite(v)), (label, t, v)
        # d sigma/dt is finite wherever sigma > 0; at sigma = 0 it may be the true +inf
        # (VP: sigma ~ sqrt(beta_min t) near t = 0), never NaN.
        assert np.all(np.isfinite(ds) | ((s == 0) & (ds == np.inf))), (t, s, ds)
        assert np.all(a >= 0) and np.all(s >= 0)
        # sigma/alpha is finite wherever alpha > 0 (rectified flow: alpha(1) = 0).
        assert np.all(np.isfinite(ratio) | (a == 0)), (t, ratio)
        assert np.all(ratio[1:] >= ratio[:-1] * (1 - 1e-6)), (t, ratio)  # t is sorted

    check()


@pytest.mark.parametrize("name", DISCRETE)
def test_discrete_coefficients_are_finite_and_variance_preserving(name):
    process = DISCRETE[name]
    T = process.num_timesteps
    coefs = jax.jit(lambda t: (process.alpha(t), process.sigma(t)))

    @PROPS
    @given(t=hnp.arrays(np.int32, (N,), elements=st.integers(-1, T - 1)))
    def check(t):
        t = np.sort(t)
        a, s = map(np.asarray, coefs(t))
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(s))
        assert np.all((0 <= a) & (a <= 1)) and np.all((0 <= s) & (s <= 1))
        np.testing.assert_allclose(a * a + s * s, 1.0, atol=1e-5)
        assert np.all(np.diff(s) >= 0) and np.all(np.diff(a) <= 0)

    check()


@pytest.mark.parametrize("name", CONTINUOUS)
def test_t_from_ratio_inverts_ratio(name):
    process = CONTINUOUS[name]
    r_min, r_max = process.ratio_range()
    round_trip = jax.jit(lambda r: process.ratio(process.t_from_ratio(r)))

    @PROPS
    @given(log_r=_floats(np.log(r_min), np.log(r_max)))
    def check(log_r):
        r = np.exp(log_r.astype(np.float64)).astype(np.float32)
        np.testing.assert_allclose(np.asarray(round_trip(r)), r, rtol=2e-4)

    check()


@pytest.mark.parametrize("name", list(CONTINUOUS) + list(DISCRETE))
def test_times_outside_the_domain_raise_the_documented_error(name):
    process = {**CONTINUOUS, **DISCRETE}[name]
    if name in DISCRETE:
        lo, hi = -1, process.num_timesteps - 1
        outside = st.one_of(st.integers(-10 ** 6, lo - 1), st.integers(hi + 1, 10 ** 6))
    else:
        lo, hi = process.domain()
        margin = 1e-3 * max(1.0, abs(hi))
        above = _float32(hi + margin, 1e6)
        outside = (above if lo == -np.inf else st.one_of(above, _float32(-1e6, lo - margin)))

    @PROPS
    @given(bad=outside, good=st.integers(0, N - 1))
    def check(bad, good):
        t = np.asarray(process.timesteps(N - 1))   # valid levels, one replaced by `bad`
        t[good] = bad
        for fn in (process.alpha, process.sigma):
            with pytest.raises(ValueError, match=rf"{type(process).__name__}: t must be in "
                                                 rf"\[{lo}, {hi}\], got "):
                fn(t)

    check()


# --- targets ----------------------------------------------------------------------------


@jax.jit
def _round_trips(y, x_t, a, s, da, ds):
    """Max over entries of |convert(convert(y, src -> dst), dst -> src) - y| / (1 + |y|),
    for every ordered pair of targets, shape (P, P)."""
    rows = []
    for src in targets.PREDICTIONS:
        row = []
        for dst in targets.PREDICTIONS:
            there = targets.convert(y, src, dst, x_t, a, s, da, ds)
            back = targets.convert(there, dst, src, x_t, a, s, da, ds)
            row.append(jnp.max(jnp.abs(back - y) / (1.0 + jnp.abs(y))))
        rows.append(jnp.stack(row))
    return jnp.stack(rows)


@PROPS
@given(y=_floats(-5, 5), x_t=_floats(-5, 5), a=_floats(0.1, 1), s=_floats(0.1, 1),
       da=_floats(-3, 0), ds=_floats(0.1, 3))
def test_every_target_converts_to_every_other_and_back(y, x_t, a, s, da, ds):
    """alpha, sigma >= 0.1 keep each conversion's condition number <= 10 (100 for the
    velocity's determinant alpha sigma' - sigma alpha' >= 0.01), so float32 round trips
    are good to ~1e-5; 1e-3 leaves room and still catches any wrong coefficient."""
    err = np.asarray(_round_trips(y, x_t, a, s, da, ds))
    assert np.all(err < 1e-3), dict(zip(targets.PREDICTIONS, err.max(1)))


# --- losses -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _all_weights(name):
    """loss_weight for every (weighting, prediction) at N times, shape (W, P, N)."""
    process = {**CONTINUOUS, **DISCRETE}[name]
    preds = [p for p in targets.PREDICTIONS if not (process.discrete and p == "velocity")]

    @jax.jit
    def fn(t):
        a, s = process.alpha(t), process.sigma(t)
        da, ds = (None, None) if process.discrete else process.derivatives(t)
        return jnp.stack([jnp.stack([diffusion.loss_weight(w, p, a, s, da, ds)
                                     for p in preds]) for w in diffusion.WEIGHTINGS])

    return fn


@pytest.mark.parametrize("name", ["vp", "ve", "rf", "edm", "ddpm-cosine"])
def test_loss_weights_are_finite_and_non_negative(name):
    """Where alpha > 0 and sigma > 0 (both ends excluded: the SNR is 0 or infinite
    there, and the 'snr'/'edm' weights with it)."""
    process = {**CONTINUOUS, **DISCRETE}[name]
    if process.discrete:
        times = hnp.arrays(np.int32, (N,), elements=st.integers(0, process.num_timesteps - 1))
    else:
        lo, hi = _time_range(process)
        lo = max(lo, 1e-4 * hi)
        if name == "rf":
            hi = 1.0 - 1e-4
        times = _floats(lo, hi)

    @PROPS
    @given(t=times)
    def check(t):
        w = np.asarray(_all_weights(name)(t))
        assert np.all(np.isfinite(w)) and np.all(w >= 0), w

    check()


@pytest.mark.parametrize("name", CONTINUOUS)
def test_loss_weights_are_finite_at_the_first_training_time(name):
    """The time samplers draw from [t_eps, t_max): every weighting must be finite at t_eps
    (rectified flow's t = 0 has sigma = 0, where 'snr' and 'edm' give inf/inf)."""
    process = CONTINUOUS[name]
    w = np.asarray(_all_weights(name)(np.full((N,), process.t_eps, np.float32)))
    assert np.all(np.isfinite(w)) and np.all(w >= 0), w


LOSS_CASES = [("ddpm-linear", "eps", "min_snr"), ("vp", "v", "min_snr"), ("ve", "x0", "uniform"),
              ("rf", "velocity", "min_snr"), ("edm", "x0", "edm")]


@pytest.mark.parametrize("name,prediction,weighting", LOSS_CASES)
def test_denoising_loss_is_finite_and_non_negative(name, prediction, weighting):
    """Training times come from the process's own sampler (rectified flow draws t = 0,
    where sigma = 0); any finite model output must give a finite loss."""
    process = {**CONTINUOUS, **DISCRETE}[name]
    model = lambda x, t: 0.5 * x + jnp.tanh(x)
    loss = jax.jit(lambda x0, seed: diffusion.denoising_loss(
        model, process, x0, jax.random.key(seed), prediction=prediction, weighting=weighting))

    @PROPS
    @given(x0=hnp.arrays(np.float32, (8, 4), elements=st.floats(-3, 3, width=32)),
           seed=st.integers(0, 2 ** 31 - 1))
    def check(x0, seed):
        v = np.asarray(loss(x0, np.uint32(seed)))
        assert v.shape == (8,) and np.all(np.isfinite(v)) and np.all(v >= 0), v

    check()


# --- Gaussian KL ------------------------------------------------------------------------


_kl = jax.jit(normal_kl)


@PROPS
@given(m1=_floats(-10, 10), l1=_floats(-10, 10), m2=_floats(-10, 10), l2=_floats(-10, 10))
def test_normal_kl_is_non_negative_and_zero_only_for_equal_arguments(m1, l1, m2, l2):
    kl = np.asarray(_kl(m1, l1, m2, l2))
    assert np.all(np.isfinite(kl)) and np.all(kl >= 0), kl
    np.testing.assert_array_equal(np.asarray(_kl(m1, l1, m1, l1)), 0.0)
    # Strictly positive where the arguments differ enough to be resolved in float32.
    differ = (np.abs(m1 - m2) > 1e-2) | (np.abs(l1 - l2) > 1e-2)
    assert np.all(kl[differ] > 0), kl
