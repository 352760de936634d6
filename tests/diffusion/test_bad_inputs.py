"""Bad input to the public diffusion functions: one ValueError that says what was wrong
and what is allowed, raised at trace time; traced values are never checked (jit works)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion
from jaxgen.diffusion import likelihood, targets

DDPM = diffusion.ddpm_process()
SMALL = diffusion.ddpm_process(num_timesteps=10)
VP, VE, RF, EDM = (diffusion.VPProcess(), diffusion.VEProcess(), diffusion.RectifiedFlow(),
                   diffusion.EDMProcess())
KEY = jax.random.key(0)
X = jnp.zeros((4, 3))
IMG = jnp.zeros((4, 8, 8, 1))
identity = lambda x, t: x


def _sample(**kw):
    kw = {"method": "ddim", "num_steps": 3, **kw}
    model = kw.pop("model", identity)
    process = kw.pop("process", SMALL)
    x = kw.pop("x", X)
    return diffusion.sample(model, process, x, KEY, **kw)


def _loss(**kw):
    model = kw.pop("model", identity)
    x = kw.pop("x", X)
    return diffusion.denoising_loss(model, SMALL, x, KEY, **kw)


# (id, call, pattern the message must match): the pattern names the argument, the bad
# value or shape, and what is allowed.
CASES = [
    # t outside the process's range (concrete values only)
    ("ddpm-t-above", lambda: DDPM.alpha(np.array([5, 1000])),
     r"DDPMProcess: t must be in \[-1, 999\], got 1000"),
    ("ddpm-t-below", lambda: DDPM.sigma(-2), r"t must be in \[-1, 999\], got -2"),
    ("ddpm-t-float", lambda: DDPM.alpha(np.array([0.5])),
     r"integer step indices in \[-1, 999\].*got dtype float"),
    ("vp-t-above", lambda: VP.alpha(np.float32(1.5)),
     r"VPProcess: t must be in \[0.0, 1.0\], got 1.5"),
    ("rf-t-below", lambda: RF.sigma(np.array([0.5, -0.25])),
     r"RectifiedFlow: t must be in \[0.0, 1.0\], got -0.25"),
    ("edm-t-above", lambda: EDM.alpha(100.0), r"EDMProcess: t must be in \[0.0, 80.0\]"),
    ("ve-t-above", lambda: VE.sigma(2.0), r"VEProcess: t must be in \[-inf, 1.0\], got 2.0"),
    ("vp-derivative-nan", lambda: VP.derivatives(np.array([0.1, np.nan, np.nan])),
     r"t must be in \[0.0, 1.0\], got nan \(and 1 more\)"),
    ("vp-ratio-negative", lambda: VP.t_from_ratio(-1.0), r"VPProcess: ratio must be in \[0.0, "),
    ("edm-ratio-above", lambda: EDM.t_from_ratio(np.array([1.0, 90.0])),
     r"ratio must be in \[0.0, 80.0\], got 90.0"),
    ("q_sample-t", lambda: diffusion.q_sample(SMALL, X, np.array([0, 1, 2, 10]), X),
     r"t must be in \[-1, 9\], got 10"),
    ("vlb-t", lambda: likelihood.vlb_terms(identity, SMALL, X, np.array([0, 1, 2, -1]), X,
                                           variance="beta"), r"t must be in \[0, 9\], got -1"),
    ("sdedit-t_start", lambda: diffusion.sdedit(identity, SMALL, X, KEY, t_start=10),
     r"t_start must be an integer in \[0, 9\], got 10"),
    ("sdedit-t_start-rf", lambda: diffusion.sdedit(identity, RF, X, KEY, t_start=1.5,
                                                    num_steps=3),
     r"t_start must be in \(0.0, 1.0\], got 1.5"),
    # num_steps < 1, or not an integer
    ("ddpm-num_steps-0", lambda: SMALL.timesteps(0),
     r"num_steps must be an integer in \[1, 10\], got 0"),
    ("vp-num_steps-0", lambda: VP.timesteps(0), r"num_steps must be an integer >= 1, got 0"),
    ("num_steps-float", lambda: _sample(num_steps=2.5),
     r"num_steps must be an integer in \[1, 10\], got 2.5"),
    ("sample-num_steps-0-rf", lambda: _sample(process=RF, num_steps=0),
     r"num_steps must be an integer >= 1, got 0"),
    ("karras-num_steps", lambda: diffusion.karras_sigmas(0, 0.002, 80.0),
     r"num_steps must be an integer >= 1, got 0"),
    ("karras-sigma-order", lambda: diffusion.karras_sigmas(5, 1.0, 0.5),
     r"sigma_max must be in \[1.0, inf\], got 0.5"),
    ("evaluations-num_steps", lambda: diffusion.evaluations("heun", 0),
     r"num_steps must be an integer >= 1, got 0"),
    ("pc-corrector-float", lambda: _sample(process=VP, method="pc", corrector_steps=1.5),
     r"corrector_steps must be an integer >= 0, got 1.5"),
    # unknown names
    ("method", lambda: _sample(method="rk45"), r"method must be one of \('ddpm', .*'rk45'"),
    ("spacing", lambda: _sample(spacing="uniform"),
     r"spacing must be one of \('leading', .*\), got 'uniform'"),
    ("spacing-continuous", lambda: _sample(process=VP, spacing="trailing"),
     r"spacing must be one of \('linspace', 'karras', 'logsnr'\) for VPProcess"),
    ("prediction-sample", lambda: _sample(prediction="noise"),
     r"prediction must be one of \('eps', 'x0', 'v', 'velocity', 'score'\), got 'noise'"),
    ("prediction-loss", lambda: _loss(prediction="noise"), r"prediction must be one of"),
    ("weighting", lambda: _loss(weighting="p2"),
     r"weighting must be one of \('uniform', 'snr', 'min_snr', 'edm'\), got 'p2'"),
    ("time-sampler", lambda: diffusion.time_sampler(VP, "beta"),
     r"time sampler must be one of \('uniform', 'logit_normal', 'log_normal'\)"),
    ("schedule", lambda: diffusion.ddpm_process("quadratic"),
     r"schedule must be one of \('linear', 'cosine', 'sigmoid'\)"),
    ("process", lambda: diffusion.make_process("vpsde"), r"process must be one of"),
    ("variance", lambda: _sample(method="ddpm", variance="fixed"),
     r"variance must be 'beta' or 'beta_tilde', got 'fixed'"),
    ("velocity-discrete", lambda: _sample(prediction="velocity"),
     r"'velocity' needs a continuous-time process"),
    # shapes that do not line up
    ("q_sample-noise", lambda: diffusion.q_sample(SMALL, X, np.zeros(4, np.int32),
                                                  jnp.zeros((4, 2))),
     r"x0 and noise must have the same shape, got \(4, 3\) and \(4, 2\)"),
    ("q_sample-t-shape", lambda: diffusion.q_sample(SMALL, X, np.zeros(3, np.int32), X),
     r"t must have shape \(4,\), one time per example, got \(3,\)"),
    ("sample-model-output", lambda: _sample(model=lambda x, t: x[:, :2]),
     r"model_fn returned shape \(4, 2\), expected \(4, 3\)"),
    ("loss-model-output", lambda: _loss(model=lambda x, t: x[:, :2]),
     r"model_fn returned shape \(4, 2\), expected \(4, 3\)"),
    ("inpaint-mask", lambda: diffusion.inpaint(identity, SMALL, X, jnp.ones(2), KEY,
                                               num_steps=3),
     r"inpaint mask of shape \(2,\) does not broadcast to the image shape \(4, 3\)"),
    ("inpaint-known-shape", lambda: _sample(inpaint=(jnp.zeros((4, 2)), 1.0)),
     r"x_known must have the shape of x_T \(4, 3\), got \(4, 2\)"),
    ("inpaint-mask-values", lambda: _sample(inpaint=(X, np.array([0.0, 1.0, 2.0]))),
     r"inpaint mask must be in \[0.0, 1.0\], got 2.0"),
    ("target-noise", lambda: targets.target("eps", X, jnp.zeros((4, 1)), 1.0, 0.5),
     r"noise must have the shape of x0 \(4, 3\), got \(4, 1\)"),
    ("to_x0-pred", lambda: targets.to_x0("eps", jnp.zeros((4, 1)), X, 1.0, 0.5),
     r"pred must have the shape of x_t \(4, 3\), got \(4, 1\)"),
    ("convert-alpha-rank", lambda: targets.convert(IMG, "eps", "x0", IMG, jnp.ones(4), 0.5),
     r"alpha of shape \(4,\) does not line up with x_t of shape \(4, 8, 8, 1\).*"
     r"e\.g\. shape \(4, 1, 1, 1\)"),
    # (B,) against (B, D) with B == D broadcasts along D without complaint in numpy
    ("target-sigma-square", lambda: targets.target("v", jnp.zeros((3, 3)), jnp.zeros((3, 3)),
                                                   1.0, jnp.ones(3)),
     r"sigma of shape \(3,\) does not line up with x0 of shape \(3, 3\)"),
    ("guidance-weight", lambda: diffusion.classifier_free_guidance(
        lambda x, t, y: x, jnp.zeros(4, jnp.int32), jnp.ones(3), null_label=1),
     r"guidance weight must be a scalar or have the shape of labels \(4,\), got shape \(3,\)"),
    ("timesteps-order", lambda: _sample(timesteps=np.array([2, 5, -1])),
     r"timesteps must decrease strictly from noisy to clean, got \[2, 5, -1\]"),
    ("timesteps-float-ddpm", lambda: _sample(timesteps=np.array([5.5, 2.0, -1.0])),
     r"timesteps of a discrete process must be integer step indices"),
    # integer images where float images are expected
    ("q_sample-int", lambda: diffusion.q_sample(SMALL, jnp.zeros((4, 3), jnp.uint8),
                                                np.zeros(4, np.int32), X),
     r"x0 must be a float array \(images scaled to \[-1, 1\].*got dtype uint8"),
    ("loss-int", lambda: _loss(x=jnp.zeros((4, 3), jnp.int32)),
     r"x0 must be a float array.*got dtype int32"),
    ("sample-int", lambda: _sample(x=jnp.zeros((4, 3), jnp.uint8)),
     r"x_T must be a float array.*got dtype uint8"),
    ("inpaint-int", lambda: diffusion.inpaint(identity, SMALL, jnp.zeros((4, 3), jnp.uint8),
                                              1.0, KEY, num_steps=3),
     r"x_known must be a float array.*got dtype uint8"),
    ("sdedit-int", lambda: diffusion.sdedit(identity, SMALL, jnp.zeros((4, 3), jnp.int32),
                                            KEY, t_start=5),
     r"x_input must be a float array.*got dtype int32"),
    ("vlb-int", lambda: likelihood.variational_bound(identity, SMALL, jnp.zeros((4, 3),
                                                     jnp.uint8), KEY, variance="beta"),
     r"x0 must be a float array.*got dtype uint8"),
    # other values out of their range
    ("ddim-eta", lambda: _sample(eta=1.5), r"eta must be in \[0.0, 1.0\], got 1.5"),
    ("pc-snr", lambda: _sample(process=VP, method="pc", snr=0.0),
     r"snr must be in \(0.0, inf\], got 0.0"),
    ("clip_x0", lambda: _sample(clip_x0=-1.0), r"clip_x0 must be in \(0.0, inf\], got -1.0"),
    ("min_snr-gamma", lambda: diffusion.loss_weight("min_snr", "eps", 0.5, 0.5, gamma=0.0),
     r"gamma must be in \(0.0, inf\], got 0.0"),
    ("time-shift", lambda: diffusion.time_sampler(RF, shift=-1.0),
     r"shift must be in \(0.0, inf\], got -1.0"),
    ("label-dropout", lambda: diffusion.drop_labels(KEY, jnp.zeros(4, jnp.int32), 1.5, 9),
     r"label dropout probability must be in \[0, 1\], got 1.5"),
]


@pytest.mark.parametrize("call,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_value_error(call, pattern):
    with pytest.raises(ValueError) as e:
        call()
    msg = str(e.value)
    assert re.search(pattern, msg), f"{msg!r} does not match {pattern!r}"
    assert "\n" not in msg


def test_traced_values_are_not_checked_so_jit_still_works():
    """Only concrete values are range-checked: under jit (and vmap) the same calls trace
    and run, and the concrete grids the samplers build stay valid."""
    t = jnp.asarray([0.25, 1.0])
    np.testing.assert_allclose(jax.jit(RF.alpha)(t), [0.75, 0.0])
    # Out of range but traced: computed, not checked (no host transfer inside jit).
    np.testing.assert_allclose(jax.jit(RF.sigma)(jnp.asarray([2.0])), [2.0])
    assert jax.jit(DDPM.alpha)(jnp.asarray([3], jnp.int32)).shape == (1,)
    da, ds = jax.jit(jax.vmap(VP.derivatives))(t)
    assert np.all(np.isfinite(np.asarray(da))) and np.all(np.isfinite(np.asarray(ds)))
    # Shapes and dtypes are static: they are checked inside jit too.
    with pytest.raises(ValueError, match="integer step indices"):
        jax.jit(DDPM.alpha)(jnp.asarray([3.0]))


@pytest.mark.parametrize("process", [VE, EDM, VP, RF], ids=lambda p: type(p).__name__)
def test_grid_end_points_pass_the_range_check(process):
    """Grids land on the ends of the range up to float32 rounding (Karras ratios through
    t_from_ratio, the clean end): every level must be accepted eagerly."""
    for spacing in ("linspace", "karras", "logsnr"):
        ts = process.timesteps(7, spacing)
        assert np.all(np.isfinite(np.asarray(process.sigma(ts))))
        np.asarray(process.derivatives(np.where(np.isfinite(ts), ts, 0.0)))
