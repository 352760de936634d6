"""Vector quantization: nearest codes by brute force, straight-through gradients (the
encoder receives the decoder's gradient), the two losses' gradients, the EMA codebook
update against its closed form, and usage statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import autoregressive as ar

RNG = np.random.default_rng(0)
CODEBOOK = jnp.asarray(RNG.normal(size=(5, 3)), jnp.float32)
Z = jnp.asarray(RNG.normal(size=(2, 4, 3)), jnp.float32)     # (B, positions, D)


def test_nearest_code_is_the_brute_force_argmin():
    brute = np.argmin(((np.asarray(Z)[..., None, :] - np.asarray(CODEBOOK)) ** 2).sum(-1), -1)
    np.testing.assert_array_equal(ar.nearest_code(Z, CODEBOOK), brute)
    q = ar.quantize(Z, CODEBOOK)
    np.testing.assert_allclose(q.z_q, np.asarray(CODEBOOK)[brute], rtol=1e-6)
    want = ((np.asarray(Z) - np.asarray(CODEBOOK)[brute]) ** 2).reshape(2, -1).mean(-1)
    np.testing.assert_allclose(q.commitment, want, rtol=1e-5)
    np.testing.assert_allclose(q.codebook_loss, want, rtol=1e-5)


def test_straight_through_passes_the_decoder_gradient_to_the_encoder():
    """d decoder_loss(z_q) / d z_e equals the decoder loss's gradient at z_q (the identity
    backward of Sec. 3.1), and no gradient reaches the codebook through z_q."""
    w = jnp.asarray(RNG.normal(size=Z.shape), jnp.float32)

    def decoder_loss(zq):
        return jnp.sum(jnp.sin(zq) * w)

    g_z, g_e = jax.grad(lambda z, e: decoder_loss(ar.quantize(z, e).z_q), (0, 1))(Z, CODEBOOK)
    expected = jax.grad(decoder_loss)(ar.quantize(Z, CODEBOOK).z_q)
    np.testing.assert_allclose(g_z, expected, rtol=1e-6)
    assert float(jnp.abs(g_z).sum()) > 0
    np.testing.assert_array_equal(g_e, 0.0)
    # without the estimator (a plain lookup) the encoder would get nothing
    plain = jax.grad(lambda z: decoder_loss(ar.lookup(ar.nearest_code(z, CODEBOOK),
                                                      CODEBOOK)))(Z)
    np.testing.assert_array_equal(plain, 0.0)


def test_commitment_trains_the_encoder_and_codebook_loss_the_codebook():
    gz_c, ge_c = jax.grad(lambda z, e: ar.quantize(z, e).commitment.sum(), (0, 1))(Z, CODEBOOK)
    gz_b, ge_b = jax.grad(lambda z, e: ar.quantize(z, e).codebook_loss.sum(), (0, 1))(
        Z, CODEBOOK)
    e = np.asarray(CODEBOOK)[np.asarray(ar.nearest_code(Z, CODEBOOK))]
    np.testing.assert_allclose(gz_c, 2 * (np.asarray(Z) - e) / 12, rtol=1e-5)  # mean of 12
    np.testing.assert_array_equal(ge_c, 0.0)
    np.testing.assert_array_equal(gz_b, 0.0)
    assert float(jnp.abs(ge_b).sum()) > 0


def test_ema_update_moves_codes_toward_their_assigned_encodings():
    codebook = jnp.array([[0.0, 0.0], [10.0, 10.0], [-5.0, 5.0]])
    z = jnp.array([[[1.0, 2.0], [3.0, 2.0], [9.0, 8.0]]])        # codes 0, 0, 1
    idx = ar.nearest_code(z, codebook)
    np.testing.assert_array_equal(idx, [[0, 0, 1]])
    n, m = jnp.ones(3), codebook
    decay = 0.9
    n1, m1 = ar.ema_update(n, m, z, idx, decay)
    # closed form (App. A.1): N = g N + (1 - g) n_j, m = g m + (1 - g) sum of assigned z
    np.testing.assert_allclose(n1, [0.9 + 0.1 * 2, 0.9 + 0.1 * 1, 0.9], rtol=1e-6)
    np.testing.assert_allclose(m1[0], 0.9 * np.zeros(2) + 0.1 * np.array([4.0, 4.0]),
                               rtol=1e-6)
    e1 = ar.ema_codebook(n1, m1, epsilon=1e-12)
    np.testing.assert_allclose(e1, np.asarray(m1) / np.asarray(n1)[:, None], rtol=1e-5)
    means = np.array([[2.0, 2.0], [9.0, 8.0]])
    before = np.linalg.norm(np.asarray(codebook)[:2] - means, axis=1)
    after = np.linalg.norm(np.asarray(e1)[:2] - means, axis=1)
    assert (after < before).all()
    np.testing.assert_allclose(e1[2], codebook[2], rtol=1e-5)   # unused code: unmoved
    n1, m1 = jax.lax.fori_loop(0, 200, lambda i, s: ar.ema_update(*s, z, idx, decay),
                               (n1, m1))                          # converges to the means
    np.testing.assert_allclose(ar.ema_codebook(n1, m1)[:2], means, rtol=1e-4)


def test_dead_codes_restart_at_encodings_of_the_batch():
    n = jnp.array([5.0, 0.2, 3.0])
    m = jnp.array([[1.0, 1.0], [7.0, 7.0], [2.0, 0.0]])
    z = jnp.array([[[0.5, 0.1], [0.3, 0.9], [-2.0, 4.0], [6.0, 1.0]]])
    n2, m2 = ar.restart_dead_codes(n, m, z, jax.random.key(0), threshold=1.0)
    np.testing.assert_array_equal(n2, [5.0, 1.0, 3.0])
    np.testing.assert_array_equal(m2[::2], m[::2])                # live codes untouched
    assert any(np.array_equal(m2[1], row) for row in np.asarray(z)[0])
    np.testing.assert_allclose(ar.ema_codebook(n2, m2)[1], m2[1], rtol=1e-4)


def test_usage_statistics():
    uniform = ar.code_counts(jnp.arange(8) % 4, 4)
    np.testing.assert_array_equal(uniform, [2, 2, 2, 2])
    assert float(ar.perplexity(uniform)) == pytest.approx(4.0)
    one = ar.code_counts(jnp.zeros(6, jnp.int32), 4)
    assert float(ar.perplexity(one)) == pytest.approx(1.0)
    assert int(ar.dead_codes(one)) == 3 and int(ar.dead_codes(uniform)) == 0


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="codebook's width"):
        ar.quantize(jnp.zeros((2, 4)), CODEBOOK)
    with pytest.raises(ValueError, match="decay"):
        ar.ema_update(jnp.ones(5), CODEBOOK, Z, ar.nearest_code(Z, CODEBOOK), 1.0)
