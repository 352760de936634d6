"""Vector quantization of the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural
Discrete Representation Learning"): nearest codes, the straight-through estimator, the
codebook and commitment losses, the EMA codebook update, and codebook usage statistics.

Notation of the paper: z_e(x) (..., D) are the encoder outputs, e (K, D) the codebook,
k = argmin_j ||z_e - e_j||^2 the code of each position and z_q = e_k its quantization.
The objective (their Eq. 3) is
  log p(x | z_q) - ||sg[z_e] - e||^2 - beta ||z_e - sg[e]||^2,
whose second term the EMA update of their Appendix A.1 replaces.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxgen.core import checks


class Quantized(NamedTuple):
    """What ``quantize`` returns.

    Attributes:
      z_q: (..., D) the quantized encodings e_k with straight-through gradients: the value
        of e_k, the gradient of z_e (z_e + sg[e_k - z_e]).
      indices: (...) int32 code of every position.
      commitment: (B,) beta-free commitment loss ||z_e - sg[e_k]||^2, mean over the
        positions and dimensions of each example.
      codebook_loss: (B,) ||sg[z_e] - e_k||^2 (same value; its gradient reaches only the
        codebook), mean per example.
    """

    z_q: chex.Array
    indices: chex.Array
    commitment: chex.Array
    codebook_loss: chex.Array


def _check(z, codebook) -> None:
    if jnp.ndim(codebook) != 2:
        raise ValueError(f"codebook must be (K, D), got shape {tuple(jnp.shape(codebook))}")
    if jnp.ndim(z) < 2 or jnp.shape(z)[-1] != jnp.shape(codebook)[-1]:
        raise ValueError(f"encodings must be (B, ..., D) with D = {jnp.shape(codebook)[-1]} "
                         f"(the codebook's width), got shape {tuple(jnp.shape(z))}")
    checks.check_float_array("encodings", z)


def squared_distances(z: chex.Array, codebook: chex.Array) -> chex.Array:
    """||z - e_j||^2 for every code j: (..., D), (K, D) -> (..., K), expanded as
    ||z||^2 - 2 z.e_j + ||e_j||^2 (one matmul)."""
    _check(z, codebook)
    return (jnp.sum(z * z, axis=-1, keepdims=True) - 2.0 * z @ codebook.T
            + jnp.sum(codebook * codebook, axis=-1))


def nearest_code(z: chex.Array, codebook: chex.Array) -> chex.Array:
    """argmin_j ||z - e_j||^2: (..., D) -> (...) int32."""
    return jnp.argmin(squared_distances(z, codebook), axis=-1).astype(jnp.int32)


def lookup(indices: chex.Array, codebook: chex.Array) -> chex.Array:
    """e_k for integer codes (...) -> (..., D)."""
    return jnp.take(codebook, indices, axis=0)


def _mean_per_example(v: chex.Array) -> chex.Array:
    return jnp.mean(v.reshape((v.shape[0], -1)), axis=-1)


def quantize(z: chex.Array, codebook: chex.Array) -> Quantized:
    """Nearest-code quantization with straight-through gradients (van den Oord et al. 2017,
    Sec. 3.1-3.2).

    Args:
      z: (B, ..., D) encoder outputs z_e(x).
      codebook: (K, D).
    """
    indices = nearest_code(z, codebook)
    e = lookup(indices, codebook)
    sg = jax.lax.stop_gradient
    return Quantized(z_q=z + sg(e - z), indices=indices,
                     commitment=_mean_per_example(jnp.square(z - sg(e))),
                     codebook_loss=_mean_per_example(jnp.square(sg(z) - e)))


def code_counts(indices: chex.Array, num_codes: int) -> chex.Array:
    """How often each code occurs in ``indices`` (any shape): (K,) float32."""
    checks.check_int("num_codes", num_codes)
    onehot = jax.nn.one_hot(jnp.reshape(indices, (-1,)), num_codes, dtype=jnp.float32)
    return jnp.sum(onehot, axis=0)


def ema_update(cluster_size: chex.Array, embed_sum: chex.Array, z: chex.Array,
               indices: chex.Array, decay: float) -> tuple[chex.Array, chex.Array]:
    """One EMA step of the codebook statistics (van den Oord et al. 2017, App. A.1):
    N_j <- g N_j + (1 - g) n_j and m_j <- g m_j + (1 - g) sum_{i: k_i = j} z_e,i.

    Args:
      cluster_size: (K,) N, the running count of encodings assigned to each code.
      embed_sum: (K, D) m, the running sum of those encodings.
      z: (B, ..., D) encodings z_e of this batch (gradients are stopped).
      indices: (B, ...) their codes.
      decay: g in [0, 1).

    Returns:
      (cluster_size, embed_sum) after the step; ``ema_codebook`` turns them into codes.
    """
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    num_codes, dim = jnp.shape(embed_sum)
    if jnp.shape(cluster_size) != (num_codes,):
        raise ValueError(f"cluster_size must be ({num_codes},) like embed_sum's rows, got "
                         f"{tuple(jnp.shape(cluster_size))}")
    z = jax.lax.stop_gradient(jnp.reshape(z, (-1, dim))).astype(jnp.float32)
    onehot = jax.nn.one_hot(jnp.reshape(indices, (-1,)), num_codes, dtype=jnp.float32)
    n = jnp.sum(onehot, axis=0)
    s = onehot.T @ z
    return (decay * cluster_size + (1.0 - decay) * n,
            decay * embed_sum + (1.0 - decay) * s)


def ema_codebook(cluster_size: chex.Array, embed_sum: chex.Array,
                 epsilon: float = 1e-5) -> chex.Array:
    """e_j = m_j / N_j with Laplace-smoothed counts N_j' = (N_j + eps) / (n + K eps) n,
    n = sum_j N_j, so a code that has gone unused for long does not divide by ~0."""
    num_codes = jnp.shape(cluster_size)[0]
    total = jnp.sum(cluster_size)
    smoothed = (cluster_size + epsilon) / (total + num_codes * epsilon) * total
    return embed_sum / smoothed[:, None]


def restart_dead_codes(cluster_size: chex.Array, embed_sum: chex.Array, z: chex.Array,
                       rng: chex.PRNGKey, threshold: float) -> tuple[chex.Array, chex.Array]:
    """Moves every code whose running count N_j is below ``threshold`` onto an encoding
    of the batch drawn at random (the "random restarts" of Dhariwal et al. 2020, Jukebox),
    with N_j = 1 and m_j = that encoding, so ``ema_codebook`` puts it there.

    Without it a code that no encoding is nearest to never moves (its N and m only
    decay), and a codebook initialised away from the encodings collapses to a few codes.

    Args:
      cluster_size: (K,) N. embed_sum: (K, D) m. z: (B, ..., D) the batch's encodings.
      rng: key of the draw (one encoding per code). threshold: counts below it restart.
    """
    num_codes, dim = jnp.shape(embed_sum)
    flat = jax.lax.stop_gradient(jnp.reshape(z, (-1, dim))).astype(jnp.float32)
    picks = flat[jax.random.randint(rng, (num_codes,), 0, flat.shape[0])]
    dead = cluster_size < threshold
    return (jnp.where(dead, 1.0, cluster_size),
            jnp.where(dead[:, None], picks, embed_sum))


def perplexity(counts: chex.Array) -> chex.Array:
    """exp(entropy) of the code frequencies ``counts`` (K,): the effective number of codes
    in use (K for uniform use, 1 when a single code takes everything)."""
    p = counts / jnp.maximum(jnp.sum(counts), 1e-12)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def dead_codes(counts: chex.Array, threshold: float = 0.0) -> chex.Array:
    """Number of codes used at most ``threshold`` times (int32 scalar)."""
    return jnp.sum(counts <= threshold).astype(jnp.int32)
