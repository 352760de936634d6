"""Exact (Bayes-optimal) denoisers for Gaussian-mixture data.

For data x_0 ~ sum_k w_k N(mu_k, s_k^2 I) and x_t = alpha x_0 + sigma z, z ~ N(0, I),
every quantity a diffusion model is trained to predict has a closed form:

  x_t | k          ~ N(alpha mu_k, (alpha^2 s_k^2 + sigma^2) I),
  E[x_0 | x_t, k]  = mu_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha mu_k),

and E[x_0 | x_t] mixes the per-component means with the responsibilities
p(k | x_t) (Bishop 2006, "Pattern Recognition and Machine Learning", Sec. 2.3.3 and 9.2).
A squared-error regression is minimised by the conditional mean, and the denoising losses
(Ho et al. 2020, Eq. 14; Vincent 2011, "A Connection Between Score Matching and Denoising
Autoencoders") are such regressions, so ``exact_denoiser`` is the network a perfectly
trained model converges to. Samplers can
therefore be tested without training: their samples must follow the mixture, up to the
discretisation error of the sampler.

Only isotropic components (one std per component) are supported: that keeps the posterior
a per-component scalar gain, needs no matrix inverses, and is enough for toy 2-D
distributions and for Gaussian data of any dimension.

The process enters only through ``process.alpha(t)`` and ``process.sigma(t)``.
"""

from __future__ import annotations

import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.diffusion import targets

DENOISER_PREDICTIONS = ("x0", "eps", "v", "velocity", "score")
TOY_MIXTURES = ("grid", "grid9", "ring8")


@chex.dataclass(frozen=True)
class GaussianMixture:
    """A mixture of isotropic Gaussians, sum_k w_k N(mu_k, s_k^2 I) in R^D.

    Attributes:
      weights: (K,) non-negative component weights; normalised internally, so they need
        not sum to one.
      means: (K, D) component means mu_k.
      stds: (K,) per-component isotropic standard deviations s_k >= 0 (0 is a point mass;
        then ``log_prob`` is undefined but the denoiser at sigma > 0 is fine).
    """

    weights: chex.Array
    means: chex.Array
    stds: chex.Array

    def __post_init__(self):
        # chex also calls this when unflattening pytrees, where the leaves may be
        # placeholders (ints, None, sentinels); validate only genuine arrays.
        fields = (self.weights, self.means, self.stds)
        if all(isinstance(f, (np.ndarray, jax.Array)) for f in fields):
            _check_mixture(self)

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def log_weights(self) -> chex.Array:
        """Normalised log w_k, shape (K,)."""
        logw = jnp.log(self.weights)
        return logw - jax.nn.logsumexp(logw)

    def mean(self) -> chex.Array:
        """The mixture mean sum_k w_k mu_k, shape (D,)."""
        return jnp.exp(self.log_weights()) @ self.means

    def sample(self, rng: chex.PRNGKey, n: int) -> chex.Array:
        """Draws ``n`` samples, shape (n, D): a component k ~ Cat(w), then N(mu_k, s_k^2 I)."""
        k_comp, k_noise = jax.random.split(rng)
        comp = jax.random.categorical(k_comp, self.log_weights(), shape=(n,))
        z = jax.random.normal(k_noise, (n, self.dim), self.means.dtype)
        return self.means[comp] + self.stds[comp][:, None] * z

    def log_prob(self, x: chex.Array) -> chex.Array:
        """Log density log p(x) for x of shape (n, D); returns (n,).

        log p(x) = logsumexp_k [log w_k - ||x - mu_k||^2 / (2 s_k^2) - D log s_k]
                   - D/2 log(2 pi).
        """
        x = _check_points(x, self.dim, "x")
        # Differences, not the ||x||^2 - 2 x.mu + ||mu||^2 expansion: the expansion cancels
        # catastrophically near a narrow component, exactly where the density is largest.
        sq = jnp.sum((x[:, None, :] - self.means[None]) ** 2, axis=-1)          # (n, K)
        var = self.stds ** 2
        logn = -0.5 * sq / var - 0.5 * self.dim * jnp.log(2.0 * jnp.pi * var)
        return jax.nn.logsumexp(self.log_weights() + logn, axis=-1)

    def at(self, alpha, sigma) -> "GaussianMixture":
        """The law of x_t = alpha x_0 + sigma z, itself a mixture of isotropic Gaussians.

        Component k becomes N(alpha mu_k, (alpha^2 s_k^2 + sigma^2) I); the weights stay.

        Args:
          alpha, sigma: scalars (a mixture has one noise level; for per-example levels use
            ``posterior_mean_x0`` directly).

        Returns:
          The noised mixture, same K and D.
        """
        if jnp.ndim(alpha) != 0 or jnp.ndim(sigma) != 0:
            raise ValueError(
                f"at() takes scalar alpha and sigma, got shapes {jnp.shape(alpha)} and "
                f"{jnp.shape(sigma)}")
        return GaussianMixture(
            weights=self.weights, means=alpha * self.means,
            stds=jnp.sqrt(alpha ** 2 * self.stds ** 2 + sigma ** 2))


def _check_mixture(mixture: GaussianMixture) -> None:
    w, mu, s = mixture.weights, mixture.means, mixture.stds
    if mu.ndim != 2:
        raise ValueError(f"means must have shape (K, D), got {mu.shape}")
    k = mu.shape[0]
    if w.shape != (k,) or s.shape != (k,):
        raise ValueError(
            f"weights and stds must have shape (K,) = ({k},) to match means {mu.shape}, "
            f"got weights {w.shape} and stds {s.shape}")


def _check_points(x: chex.Array, dim: int, name: str) -> chex.Array:
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {x.shape}")
    return x


def _per_example(v, batch: int, name: str) -> chex.Array:
    """Scalar or (B,) noise level -> (B, 1), ready to broadcast against (B, K)."""
    v = jnp.asarray(v)
    if v.ndim == 0:
        v = jnp.broadcast_to(v, (batch,))
    if v.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {v.shape}")
    return v[:, None]


def _posterior_stats(mixture: GaussianMixture, x_t: chex.Array, alpha, sigma):
    """E[x_0 | x_t] and -score = sum_k r_k u_k, both (B, D), for x_t of shape (B, D).

    With var_k = alpha^2 s_k^2 + sigma^2 and r_k = p(k | x_t), write
    u_k = (x_t - alpha mu_k) / var_k. Then

      E[x_0 | x_t] = sum_k r_k (mu_k + alpha s_k^2 u_k),
      E[z | x_t]   = sigma sum_k r_k u_k,
      score        = grad log p_t(x_t) = -sum_k r_k u_k.

    The second line follows from x_t - alpha E[x_0|x_t, k] = sigma^2 u_k. Returning
    sum_k r_k u_k (rather than deriving eps as (x_t - alpha E[x_0|x_t]) / sigma) avoids
    dividing a small difference by a tiny sigma, and keeps the score finite at sigma = 0.

    Returns:
      (x0, ru, a, g): x0 and ru of shape (B, D); alpha and sigma as (B, 1) columns.
    """
    _check_mixture(mixture)
    x_t = _check_points(x_t, mixture.dim, "x_t")
    batch = x_t.shape[0]
    a = _per_example(alpha, batch, "alpha").astype(x_t.dtype)               # (B, 1)
    g = _per_example(sigma, batch, "sigma").astype(x_t.dtype)               # (B, 1)
    s2 = mixture.stds.astype(x_t.dtype)[None, :] ** 2                      # (1, K)
    var = a ** 2 * s2 + g ** 2                                              # (B, K)
    # Direct differences (B, K, D) rather than the dot-product expansion: at sigma ~ 1e-3
    # the distances are ~1e-6 and the expansion would lose them to cancellation.
    resid = x_t[:, None, :] - a[:, :, None] * mixture.means[None]           # (B, K, D)
    sq = jnp.sum(resid ** 2, axis=-1)                                       # (B, K)
    energy = 0.5 * sq / var + 0.5 * mixture.dim * jnp.log(var)               # (B, K)
    # When sigma is tiny the energies reach ~1e6, where a float32 ulp is 0.06: adding
    # log w_k to them directly would round the weights away (at alpha = 0 all energies are
    # equal and only the weights matter). Subtract the per-row minimum first; the softmax
    # is then normalised log-sum-exp style on logits <= max_k log w_k.
    energy = energy - jnp.min(energy, axis=-1, keepdims=True)
    r = jax.nn.softmax(mixture.log_weights()[None] - energy, axis=-1)       # (B, K)
    u = resid / var[:, :, None]                                             # (B, K, D)
    x0 = jnp.einsum("bk,kd->bd", r, mixture.means) + jnp.einsum(
        "bk,bkd->bd", r * (a * s2), u)
    ru = jnp.einsum("bk,bkd->bd", r, u)
    return x0, ru, a, g


def posterior_mean_x0(mixture: GaussianMixture, x_t: chex.Array, alpha, sigma) -> chex.Array:
    """The Bayes-optimal denoiser E[x_0 | x_t] for Gaussian-mixture data, in closed form.

    Responsibilities p(k | x_t) use N(x_t; alpha mu_k, (alpha^2 s_k^2 + sigma^2) I) and are
    normalised with log-sum-exp; each component contributes its Gaussian posterior mean
    mu_k + alpha s_k^2 / (alpha^2 s_k^2 + sigma^2) (x_t - alpha mu_k) (Bishop 2006, Sec. 2.3.3).
    At alpha = 0 this is the mixture mean; as sigma -> 0 it tends to x_t / alpha.

    Args:
      mixture: the data distribution.
      x_t: (B, D) noisy points.
      alpha, sigma: scalars or (B,) arrays; alpha^2 s_k^2 + sigma^2 must be > 0.

    Returns:
      (B, D) posterior means.
    """
    return _posterior_stats(mixture, x_t, alpha, sigma)[0]


def exact_denoiser(mixture: GaussianMixture, process, prediction: str = "x0") -> Callable:
    """The model a perfectly trained diffusion network would be, for mixture data.

    Args:
      mixture: the data distribution of x_0.
      process: any process exposing ``alpha(t)`` and ``sigma(t)`` (nothing else is used).
      prediction: what ``model_fn`` returns: 'x0' (E[x_0|x_t]), 'eps' (E[z|x_t]),
        'v' (alpha E[z|x_t] - sigma E[x_0|x_t]; Salimans & Ho 2022, Sec. 4), 'velocity'
        (E[dx_t/dt | x_t] = alpha'(t) E[x_0|x_t] + sigma'(t) E[z|x_t], the flow-matching
        regression target, Lipman et al. 2023, Eq. 9; z - x_0 for rectified flow) or
        'score' (grad log p_t(x_t) = -E[z|x_t] / sigma, Tweedie's formula; Efron 2011,
        "Tweedie's Formula and Selection Bias"). 'velocity' needs a continuous-time
        process (its ``derivatives``).

    Returns:
      ``model_fn(x_t, t)``: x_t of shape (B, ...) with prod(...) == D (image-shaped
      mixtures are flattened and restored), t of shape (B,); returns the prediction with
      the shape of x_t.
    """
    if prediction not in DENOISER_PREDICTIONS:
        raise ValueError(
            f"prediction must be one of {DENOISER_PREDICTIONS}, got {prediction!r}")
    if prediction == "velocity" and not callable(getattr(process, "derivatives", None)):
        raise ValueError(f"prediction 'velocity' (dx_t/dt) needs a continuous-time process "
                         f"with derivatives(t); {type(process).__name__} has none")

    def model_fn(x_t: chex.Array, t: chex.Array) -> chex.Array:
        if x_t.ndim < 2 or math.prod(x_t.shape[1:]) != mixture.dim:
            raise ValueError(
                f"x_t must have shape (B, ...) with {mixture.dim} features per example, "
                f"got {x_t.shape}")
        flat = x_t.reshape(x_t.shape[0], -1)
        x0, ru, a, g = _posterior_stats(mixture, flat, process.alpha(t), process.sigma(t))
        if prediction == "x0":
            out = x0
        elif prediction == "eps":
            out = g * ru
        elif prediction == "v":
            out = a * (g * ru) - g * x0
        elif prediction == "velocity":
            # E[dx_t/dt | x_t] is affine in (E[x_0|x_t], E[z|x_t]) with the coefficients
            # (alpha', sigma') of targets.coefficients.
            da, ds = (_per_example(v, flat.shape[0], n).astype(flat.dtype)
                      for v, n in zip(process.derivatives(t), ("dalpha", "dsigma")))
            out = targets.target("velocity", x0, g * ru, a, g, da, ds)
        else:
            out = -ru
        return out.reshape(x_t.shape)

    return model_fn


def gaussian(dim: int, mean=0.0, std: float = 1.0) -> GaussianMixture:
    """A single Gaussian N(mean, std^2 I) in R^dim as a one-component mixture.

    Args:
      dim: D.
      mean: scalar or (D,) mean.
      std: scalar isotropic standard deviation.
    """
    mu = jnp.broadcast_to(jnp.asarray(mean, jnp.float32), (dim,))
    return GaussianMixture(weights=jnp.ones((1,), jnp.float32), means=mu[None],
                           stds=jnp.full((1,), std, jnp.float32))


def toy_mixture_2d(name: str) -> GaussianMixture:
    """Standard 2-D toy mixtures, scaled to unit variance per coordinate.

    Unit variance keeps the data inside roughly [-2, 2] (DESIGN.md: data of order one) and
    matches the N(0, I) prior of a variance-preserving process.

    Args:
      name: 'grid' (5 x 5 grid, the "25 Gaussians" of Srivastava et al. 2017, VEEGAN),
        'grid9' (3 x 3 grid) or 'ring8' (8 Gaussians on a circle, Metz et al. 2017,
        "Unrolled GANs"). Component std is 0.1 x the spacing for the grids and 0.1 for
        the ring.

    Returns:
      The mixture, equal weights, means (K, 2).
    """
    if name in ("grid", "grid9"):
        side = 5 if name == "grid" else 3
        ticks = np.arange(side, dtype=np.float64) - (side - 1) / 2
        # Per coordinate Var = c^2 Var(ticks) + s^2 with s = 0.1 c; solve for c.
        c = 1.0 / math.sqrt(np.var(ticks) + 0.01)
        gx, gy = np.meshgrid(ticks, ticks, indexing="ij")
        means = c * np.stack([gx.ravel(), gy.ravel()], axis=1)
        std = 0.1 * c
    elif name == "ring8":
        std = 0.1
        # Per coordinate Var = r^2 / 2 + s^2.
        radius = math.sqrt(2.0 * (1.0 - std ** 2))
        angles = 2.0 * np.pi * np.arange(8) / 8
        means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        raise ValueError(f"toy mixture name must be one of {TOY_MIXTURES}, got {name!r}")
    k = means.shape[0]
    return GaussianMixture(weights=jnp.full((k,), 1.0 / k, jnp.float32),
                           means=jnp.asarray(means, jnp.float32),
                           stds=jnp.full((k,), std, jnp.float32))
