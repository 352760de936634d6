"""The DDPM variational bound and learned reverse variances.

The negative log-likelihood of a discrete DDPM is bounded by (Ho et al. 2020, "Denoising
Diffusion Probabilistic Models", Eq. 5; Sohl-Dickstein et al. 2015, Eq. 14)

    -log p(x_0) <= L_T + sum_{t>1} L_{t-1} + L_0,
    L_T     = KL(q(x_T | x_0) || N(0, I)),
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),
    L_0     = -log p(x_0 | x_1),

with the expectation over x_t ~ q(x_t | x_0). Every term is a closed-form Gaussian KL or a
decoder log-likelihood, so the bound is evaluated exactly in t (all T steps) and by Monte
Carlo in x_t (one draw per step and example).

Index convention (``schedules.DDPMProcess``): array index ``t = 0 .. T-1`` is the paper's
step ``t + 1``. Index 0 therefore holds L_0 (the decoder), index t > 0 holds the paper's
L_t = KL(q(x_t | x_{t+1}, x_0) || p(x_t | x_{t+1})), which the docstrings below write as the
KL at index t.

Learned variances follow Nichol & Dhariwal 2021 ("Improved Denoising Diffusion
Probabilistic Models", Sec. 3.1): the network interpolates the log variance between
log beta_t and log beta-tilde_t (Eq. 15) and is trained with L_hybrid = L_simple +
lambda L_vlb (Eq. 16), with a stop-gradient on the mean in L_vlb.

Units: every function returns nats unless it says bits.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import chex
import jax
import jax.numpy as jnp

from jaxgen.core import checks
from jaxgen.core.gaussians import (discretized_gaussian_log_likelihood,
                                   gaussian_log_likelihood, normal_kl)
from jaxgen.core.rng import per_example_keys
from jaxgen.diffusion import schedules, targets
from jaxgen.diffusion.schedules import _expand

VARIANCES = ("beta", "beta_tilde", "learned_range")
DECODERS = ("discretized", "gaussian")

# ---------------------------------------------------------------------------------------
# Forward posterior and model reverse step.
# ---------------------------------------------------------------------------------------


def _check_T(process) -> None:
    if process.num_timesteps < 2:
        raise ValueError("the clipped log variance at the first step uses the second step's "
                         f"value, so need num_timesteps >= 2, got {process.num_timesteps}")


def _check_x(name: str, x: chex.Array) -> None:
    if x.ndim < 2:
        raise ValueError(f"{name} must be (B, ...) with a batch dimension, got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be a float array (images scaled to [-1, 1]), "
                         f"got dtype {x.dtype}")


def _check_t(t: chex.Array, batch: int, num_timesteps: int) -> None:
    if jnp.shape(t) != (batch,):
        raise ValueError(f"t must have shape ({batch},) (one step index per example), "
                         f"got {jnp.shape(t)}")
    if not jnp.issubdtype(jnp.result_type(t), jnp.integer):
        raise ValueError(f"t must hold integer step indices in [0, {num_timesteps - 1}], "
                         f"got dtype {jnp.result_type(t)}")
    # A traced t is not checked: out-of-range indices would be clamped by the gathers.
    checks.check_range("t", t, 0, num_timesteps - 1)


def _beta_tilde_clipped(process) -> chex.Array:
    """beta-tilde_t with the first entry (0: x_0 is known given x_0) replaced by the
    second, as in the improved-DDPM code, so that its log is finite. Shape (T,).

    The replacement happens before the log: taking log(0) and then dropping it would
    still give NaN gradients if the schedule were ever differentiated.
    """
    var = process.posterior_variance("beta_tilde")
    return jnp.concatenate([var[1:2], var[1:]])


def _posterior_coefs(process):
    """(coef_x0, coef_xt) of the posterior mean, Ho et al. Eq. 7, each (T,).

    mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
            + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t.
    At index 0 these are (1, 0): the posterior of the step before the first is x_0 itself.
    """
    one_m_abar = process.one_minus_alpha_bars
    coef_x0 = jnp.sqrt(process.alpha_bars_prev()) * process.betas / one_m_abar
    coef_xt = jnp.sqrt(process.alphas) * process.one_minus_alpha_bars_prev() / one_m_abar
    return coef_x0, coef_xt


def posterior_mean_variance(process: schedules.DDPMProcess, x0: chex.Array, x_t: chex.Array,
                            t: chex.Array):
    """Mean, variance and log variance of the forward posterior q(x_{t-1} | x_t, x_0).

    Ho et al. (2020) Eqs. 6-7: N(mu~_t(x_t, x_0), beta-tilde_t I) with
    beta-tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t. At index t = 0 the posterior is
    the point mass at x_0 (variance 0); its log variance is clipped to the value at index 1
    (Nichol & Dhariwal 2021 code), because beta-tilde_1 = 0. The KL terms never use that
    entry (index 0 holds the decoder term), it only keeps the arrays finite.

    Args:
      process: the discrete DDPM process.
      x0: clean data (B, ...).
      x_t: noisy data (B, ...), same shape.
      t: (B,) int step indices in [0, T).

    Returns:
      (mean (B, ...), variance (B, 1, ..., 1), log_variance (B, 1, ..., 1)).
    """
    _check_T(process)
    _check_x("x0", x0)
    if x_t.shape != x0.shape:
        raise ValueError(f"x_t must have the shape of x0 {x0.shape}, got {x_t.shape}")
    _check_t(t, x0.shape[0], process.num_timesteps)
    coef_x0, coef_xt = _posterior_coefs(process)
    mean = _expand(coef_x0[t], x0) * x0 + _expand(coef_xt[t], x0) * x_t
    variance = _expand(process.posterior_variance("beta_tilde")[t], x0)
    log_variance = _expand(jnp.log(_beta_tilde_clipped(process))[t], x0)
    return mean, variance, log_variance


def _split_output(pred: chex.Array, x_t: chex.Array, variance: str):
    """Checks the model output's shape and splits off the variance channels."""
    _check_variance(variance)
    if variance != "learned_range":
        if pred.shape != x_t.shape:
            raise ValueError(f"model output must have shape {x_t.shape} for variance "
                             f"{variance!r}, got {pred.shape}")
        return pred, None
    channels = x_t.shape[-1]
    expected = x_t.shape[:-1] + (2 * channels,)
    if pred.shape != expected:
        raise ValueError(f"for variance 'learned_range' the model output must have twice the "
                         f"channels (last axis) of x_t: expected {expected}, got {pred.shape}")
    return pred[..., :channels], pred[..., channels:]


def model_mean_variance(process: schedules.DDPMProcess, pred: chex.Array, x_t: chex.Array,
                        t: chex.Array, prediction: str = "eps", variance: str = "beta"):
    """Mean, variance and log variance of the model's reverse step p(x_{t-1} | x_t).

    Mean: the posterior mean with x_0 replaced by the model's estimate,
    mu_theta = mu~_t(x_t, x0_hat), x0_hat = ``targets.to_x0(prediction, ...)``
    (Ho et al. Eq. 11 for eps; the same mean for every prediction type).

    Variance:
      'beta':          beta_t (Ho et al. Sec. 3.2, the upper choice; index 0 uses beta_1).
      'beta_tilde':    beta-tilde_t, clipped at index 0 to beta-tilde_2 (beta-tilde_1 = 0
                       would make the decoder a point mass).
      'learned_range': Nichol & Dhariwal (2021) Eq. 15: the network's second half of
                       channels is v in [-1, 1] (a raw output, not squashed here);
                       log Sigma = frac log beta_t + (1 - frac) log beta-tilde_t with
                       frac = (v + 1) / 2 and the clipped beta-tilde.

    Args:
      process: the discrete DDPM process.
      pred: model output, (B, ...) like x_t, or (B, ..., 2C) for 'learned_range' where x_t
        is (B, ..., C): channels are the last axis (NHWC images, (N, D) toy data).
      x_t: noisy data (B, ...).
      t: (B,) int step indices in [0, T).
      prediction: what the (first half of the) output predicts: any of ``targets``'s.
      variance: 'beta', 'beta_tilde' or 'learned_range'.

    Returns:
      (mean (B, ...), variance, log_variance): the variances are (B, 1, ..., 1) for the
      fixed choices and (B, ...) for 'learned_range'.
    """
    _check_T(process)
    _check_x("x_t", x_t)
    _check_t(t, x_t.shape[0], process.num_timesteps)
    out, v = _split_output(pred, x_t, variance)
    alpha = _expand(process.alpha(t), x_t)
    sigma = _expand(process.sigma(t), x_t)
    x0_hat = targets.to_x0(prediction, out, x_t, alpha, sigma)
    coef_x0, coef_xt = _posterior_coefs(process)
    mean = _expand(coef_x0[t], x_t) * x0_hat + _expand(coef_xt[t], x_t) * x_t
    if variance == "beta":
        log_variance = _expand(jnp.log(process.betas)[t], x_t)
    elif variance == "beta_tilde":
        log_variance = _expand(jnp.log(_beta_tilde_clipped(process))[t], x_t)
    else:
        max_log = _expand(jnp.log(process.betas)[t], x_t)
        min_log = _expand(jnp.log(_beta_tilde_clipped(process))[t], x_t)
        frac = (v + 1.0) / 2.0
        log_variance = frac * max_log + (1.0 - frac) * min_log
    return mean, jnp.exp(log_variance), log_variance


# ---------------------------------------------------------------------------------------
# Terms of the bound.
# ---------------------------------------------------------------------------------------


def _check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")


def _check_variance(variance: str) -> None:
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")


def _sum_per_example(x: chex.Array) -> chex.Array:
    return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def _num_dims(x0: chex.Array) -> int:
    return math.prod(x0.shape[1:])


def _terms_from_output(process, out, x0, x_t, t, prediction, variance, decoder):
    """vlb term per example (B,) in nats from an already computed model output."""
    true_mean, _, true_logvar = posterior_mean_variance(process, x0, x_t, t)
    mean, _, logvar = model_mean_variance(process, out, x_t, t, prediction, variance)
    kl = _sum_per_example(normal_kl(true_mean, true_logvar, mean, logvar))
    logvar = jnp.broadcast_to(logvar, x0.shape)
    if decoder == "discretized":
        log_lik = discretized_gaussian_log_likelihood(x0, mean, 0.5 * logvar)
    else:
        log_lik = gaussian_log_likelihood(x0, mean, logvar)
    nll = -_sum_per_example(log_lik)
    # Both are computed for every example so that one batch can mix steps.
    return jnp.where(t == 0, nll, kl)


def vlb_terms(model_fn: Callable, process: schedules.DDPMProcess, x0: chex.Array,
              t: chex.Array, noise: chex.Array, *, prediction: str = "eps", variance: str,
              decoder: str = "discretized") -> chex.Array:
    """One term of the variational bound per example, Ho et al. (2020) Eq. 5.

    x_t = alpha(t) x_0 + sigma(t) noise is scored once by ``model_fn``; then
      t == 0: L_0 = -log p(x_0 | x_1), the decoder NLL, with mean = x0_hat and the
              model's variance at index 0 ('discretized': Eq. 13; 'gaussian': the
              continuous density, for continuous data);
      t > 0:  KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)), Eq. 5 / Nichol & Dhariwal
              Sec. 2.
    Both are summed over the non-batch dimensions.

    Args:
      model_fn: (x_t (B, ...), t (B,) int32) -> output (B, ...), or (B, ..., 2C) for
        variance 'learned_range'.
      process: the discrete DDPM process (T >= 2).
      x0: clean data (B, ...) float; in [-1, 1] on the 256-level grid for 'discretized'.
      t: (B,) int step indices in [0, T); may differ between examples.
      noise: standard normal (B, ...), the shape of x0.
      prediction: what model_fn predicts ('eps', 'x0', 'v', ...).
      variance: 'beta', 'beta_tilde' or 'learned_range' (see ``model_mean_variance``).
      decoder: 'discretized' or 'gaussian'.

    Returns:
      (B,) nats.
    """
    _check_x("x0", x0)
    _check_decoder(decoder)
    _check_variance(variance)
    _check_T(process)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {x0.shape}, got {noise.shape}")
    _check_t(t, x0.shape[0], process.num_timesteps)
    x_t = _expand(process.alpha(t), x0) * x0 + _expand(process.sigma(t), x0) * noise
    out = model_fn(x_t, t)
    return _terms_from_output(process, out, x0, x_t, t, prediction, variance, decoder)


def prior_kl(process: schedules.DDPMProcess, x0: chex.Array) -> chex.Array:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, summed over dims; no parameters.

    Args:
      process: the discrete DDPM process.
      x0: clean data (B, ...).

    Returns:
      (B,) nats.
    """
    _check_x("x0", x0)
    last = process.num_timesteps - 1
    mean = jnp.sqrt(process.alpha_bars[last]) * x0
    logvar = jnp.log(process.one_minus_alpha_bars[last])
    return _sum_per_example(normal_kl(mean, logvar, 0.0, 0.0))


def variational_bound(model_fn: Callable, process: schedules.DDPMProcess, x0: chex.Array,
                      rng: chex.PRNGKey, *, prediction: str = "eps", variance: str,
                      decoder: str = "discretized",
                      bits_per_dim: bool = True) -> Dict[str, chex.Array]:
    """The full DDPM variational bound on -log p(x_0), Ho et al. (2020) Eq. 5.

    All T terms are evaluated, in one ``lax.scan`` over t with one ``model_fn`` call per
    step on the whole batch; x_t at step t for example i uses the noise of key
    fold_in(fold_in(rng, t), i), so an example's bound does not depend on the batch it
    is evaluated in. The expectation over x_t is a one-sample Monte Carlo estimate per
    step (unbiased; average over examples or repeat with other keys to reduce variance).

    Args:
      model_fn: (x_t (B, ...), t (B,) int32) -> output; see ``vlb_terms``.
      process: the discrete DDPM process (T >= 2).
      x0: clean data (B, ...).
      rng: PRNG key.
      prediction: what model_fn predicts.
      variance: 'beta', 'beta_tilde' or 'learned_range'.
      decoder: 'discretized' (data on the 256-level grid in [-1, 1]) or 'gaussian'.
      bits_per_dim: divide nats by D ln 2 (D = dims per example, e.g. H*W*C), the unit
        of Ho et al. Table 2; otherwise nats per example.

    Returns:
      dict of per-example (B,) arrays: 'total' = 'prior' + 'decoder' + 'diffusion',
      'prior' (L_T), 'decoder' (L_0), 'diffusion' (sum_{t>1} L_{t-1}), and 'terms'
      (B, T), the term at each step index (index 0 is L_0); all in the same unit.
    """
    _check_x("x0", x0)
    _check_decoder(decoder)
    _check_variance(variance)
    _check_T(process)
    batch = x0.shape[0]

    def step(carry, t):
        keys = per_example_keys(jax.random.fold_in(rng, t), batch)
        noise = jax.vmap(lambda k: jax.random.normal(k, x0.shape[1:], x0.dtype))(keys)
        t_batch = jnp.full((batch,), t, jnp.int32)
        term = vlb_terms(model_fn, process, x0, t_batch, noise, prediction=prediction,
                         variance=variance, decoder=decoder)
        return carry, term

    _, terms = jax.lax.scan(step, None, jnp.arange(process.num_timesteps, dtype=jnp.int32))
    terms = terms.T  # (B, T)
    out = {"prior": prior_kl(process, x0), "decoder": terms[:, 0],
           "diffusion": jnp.sum(terms[:, 1:], axis=1)}
    out["total"] = out["prior"] + out["decoder"] + out["diffusion"]
    out["terms"] = terms
    if bits_per_dim:
        scale = 1.0 / (_num_dims(x0) * math.log(2.0))
        out = {k: v * scale for k, v in out.items()}
    return out


def hybrid_loss(model_fn: Callable, process: schedules.DDPMProcess, x0: chex.Array,
                rng: chex.PRNGKey, *, prediction: str = "eps", lambda_vlb: float = 0.001,
                decoder: str = "discretized") -> chex.Array:
    """L_hybrid = L_simple + lambda L_vlb, Nichol & Dhariwal (2021) Sec. 3.1, Eq. 16.

    The model outputs 2C channels (last axis): the prediction and v of the 'learned_range'
    variance (Eq. 15). Per example, t ~ U{0..T-1} and z ~ N(0, I) are drawn from
    fold_in(rng, i) (independent of the batch size), and one model call gives both terms:

      L_simple: mean over dims of (prediction - target)^2 (Ho et al. Eq. 14, the
                ``denoising_loss`` convention); the variance half gets no gradient from it.
      L_vlb:    the bound term at t (``vlb_terms``) computed with stop_gradient on the
                prediction half, so L_vlb trains only the variance ("the mean is guided by
                L_simple", Sec. 3.1). It is taken in bits per dim and multiplied by T, which
                makes it an unbiased estimate of the full bound minus the constant L_T, in
                bits/dim. With lambda = 0.001 and T = 1000 this is exactly the RESCALED_MSE
                loss of the paper's code (vb * T / 1000).

    Args:
      model_fn: (x_t (B, ..., C), t (B,) int32) -> (B, ..., 2C).
      process: the discrete DDPM process (T >= 2).
      x0: clean data (B, ..., C).
      rng: PRNG key.
      prediction: what the first half of the output predicts ('eps', 'x0' or 'v').
      lambda_vlb: weight of L_vlb (the paper's lambda = 0.001).
      decoder: 'discretized' for 8-bit data, 'gaussian' for continuous data.

    Returns:
      (B,) loss per example.
    """
    _check_x("x0", x0)
    _check_decoder(decoder)
    _check_T(process)
    batch = x0.shape[0]
    keys = per_example_keys(rng, batch)

    def draw(key):
        k_t, k_z = jax.random.split(key)
        t = jax.random.randint(k_t, (), 0, process.num_timesteps)
        return t, jax.random.normal(k_z, x0.shape[1:], x0.dtype)

    t, noise = jax.vmap(draw)(keys)
    alpha = _expand(process.alpha(t), x0)
    sigma = _expand(process.sigma(t), x0)
    x_t = alpha * x0 + sigma * noise
    out = model_fn(x_t, t)
    pred, v = _split_output(out, x_t, "learned_range")
    mse = jnp.mean(jnp.square(pred - targets.target(prediction, x0, noise, alpha, sigma)),
                   axis=tuple(range(1, x0.ndim)))
    frozen = jnp.concatenate([jax.lax.stop_gradient(pred), v], axis=-1)
    vlb = _terms_from_output(process, frozen, x0, x_t, t, prediction, "learned_range", decoder)
    vlb_bpd = vlb / (_num_dims(x0) * math.log(2.0))
    return mse + lambda_vlb * process.num_timesteps * vlb_bpd
