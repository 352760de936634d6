"""The Diffusion Transformer: patchify/unpatchify, adaLN-Zero identity at initialisation,
the parameter counts of the paper's twelve models, position embeddings and the
cross-attention block for sequence conditioning."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.nets import DiT, dit_kwargs, patchify, unpatchify
from jaxgen.nets.dit import sincos_pos_embed_2d

# Peebles & Xie (2023), "Scalable Diffusion Models with Transformers", arXiv:2212.09748v2,
# Table 4 (all twelve models; parameters in millions). These are the ImageNet 256x256
# latent models: 32x32x4 inputs, 1000 classes plus the null class, learned-sigma output
# (2 x 4 channels).
PAPER_PARAMS_M = {
    ("S", 8): 33, ("S", 4): 33, ("S", 2): 33,
    ("B", 8): 131, ("B", 4): 130, ("B", 2): 130,
    ("L", 8): 459, ("L", 4): 458, ("L", 2): 458,
    ("XL", 8): 676, ("XL", 4): 675, ("XL", 2): 675,
}


def tiny(**kw):
    args = dict(out_channels=3, patch_size=2, hidden_size=32, depth=2, num_heads=2,
                num_classes=10)
    args.update(kw)
    return DiT(**args)


def perturb(params, scale=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + scale * rng.standard_normal(p.shape, np.float32), params)


# -- patches -----------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 4])
def test_patchify_unpatchify_round_trip_exactly(p):
    x = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
    tokens = patchify(x, p)
    assert tokens.shape == (2, (8 // p) * (12 // p), p * p * 3)
    np.testing.assert_array_equal(unpatchify(tokens, p, 8, 12), x)
    # and the other way round: tokens -> image -> the same tokens
    np.testing.assert_array_equal(patchify(unpatchify(tokens, p, 8, 12), p), tokens)


def test_a_patch_lands_in_one_token_in_raster_order():
    p, h, w = 2, 6, 8
    # every pixel holds the index of its patch in raster order (row of patches first)
    rows, cols = np.meshgrid(np.arange(h) // p, np.arange(w) // p, indexing="ij")
    index = (rows * (w // p) + cols).astype(np.float32)
    x = np.repeat(index[None, :, :, None], 2, axis=-1)
    tokens = np.asarray(patchify(jnp.asarray(x), p))
    for k in range(tokens.shape[1]):
        np.testing.assert_array_equal(tokens[0, k], np.full(p * p * 2, k))
    # inside a token: the patch's pixels row by row, channels last
    y = np.arange(h * w * 2, dtype=np.float32).reshape(1, h, w, 2)
    np.testing.assert_array_equal(np.asarray(patchify(jnp.asarray(y), p))[0, w // p + 1],
                                  y[0, 2:4, 2:4, :].reshape(-1))


def test_bad_patch_sizes_are_refused():
    with pytest.raises(ValueError, match="divisible by the patch size 4"):
        patchify(jnp.zeros((1, 6, 8, 1)), 4)
    with pytest.raises(ValueError, match="cannot unpatchify"):
        unpatchify(jnp.zeros((1, 12, 4)), 2, 6, 6)


def test_sincos_position_embeddings():
    emb = sincos_pos_embed_2d(3, 4, 8)  # dim/4 = 2 frequencies per axis: 1 and 1/100
    assert emb.shape == (12, 8)
    r, c = 2, 3
    w = np.array([1.0, 0.01])
    expected = np.concatenate([np.sin(r * w), np.cos(r * w), np.sin(c * w), np.cos(c * w)])
    np.testing.assert_allclose(emb[r * 4 + c], expected, rtol=1e-6, atol=1e-7)
    assert len({tuple(np.round(e, 5)) for e in emb}) == 12  # every position is distinct


# -- adaLN-Zero --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_dit():
    """A tiny class-conditional DiT with cross-attention, its initial parameters and a
    jitted apply that also returns every module's output (compiled once for the module)."""
    model = tiny(cross_attention=True)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    ctx = jax.random.normal(jax.random.key(2), (2, 5, 7))
    params = jax.jit(model.init)(jax.random.key(0), x, jnp.zeros((2,)),
                                 jnp.zeros((2,), jnp.int32), ctx)["params"]

    @jax.jit
    def run(params, t, labels, ctx):
        out, inter = model.apply({"params": params}, x, t, labels, ctx,
                                 capture_intermediates=True, mutable=["intermediates"])
        inter = inter["intermediates"]
        tokens = inter["patch_embed"]["__call__"][0] + sincos_pos_embed_2d(4, 4, 32)[None]
        return out, [tokens] + [inter[f"block_{i}"]["__call__"][0] for i in range(model.depth)]

    return model, params, run, x, ctx


def test_adaln_zero_makes_every_block_the_identity_at_init(cross_dit):
    """Peebles & Xie (2023), Sec. 3.2: the zero-initialised modulation regresses zero
    gates, so each block returns its input exactly (the cross-attention layer too: its
    output projection is zero), and the zero final layer gives a zero output."""
    model, params, run, x, ctx = cross_dit
    out, tokens = run(params, jnp.array([3.0, 700.0]), jnp.array([1, 10]), ctx)
    np.testing.assert_array_equal(out, np.zeros_like(x))
    assert len(tokens) == model.depth + 1
    for before, after in zip(tokens[:-1], tokens[1:]):
        np.testing.assert_array_equal(after, before)
    # The check can fail: with non-zero modulation (gates) no block is the identity.
    moved = {k: dict(v, adaLN_modulation=perturb(v["adaLN_modulation"]))
             if k.startswith("block_") else v for k, v in params.items()}
    _, tokens = run(moved, jnp.array([3.0, 700.0]), jnp.array([1, 10]), ctx)
    for before, after in zip(tokens[:-1], tokens[1:]):
        assert float(jnp.max(jnp.abs(after - before))) > 1e-3


def test_time_label_and_context_change_the_output(cross_dit):
    model, params, run, x, ctx = cross_dit
    params = perturb(params)
    t, labels = jnp.array([10.0, 10.0]), jnp.array([1, 1])
    base = run(params, t, labels, ctx)[0]
    for other in (run(params, t + 300, labels, ctx), run(params, t, labels + 1, ctx),
                  run(params, t, labels, -ctx)):
        assert float(jnp.max(jnp.abs(other[0] - base))) > 1e-3
    with pytest.raises(ValueError, match="needs a context"):
        jax.eval_shape(lambda: model.apply({"params": params}, x, t, labels))


# -- parameter counts --------------------------------------------------------------------


@pytest.mark.parametrize("size", ["S", "B", "L", "XL"])
def test_parameter_counts_match_the_paper_within_one_percent(size):
    """All twelve models of Peebles & Xie (2023) Table 4, counted from shapes only
    (jax.eval_shape: no memory, no compute)."""
    for p in (2, 4, 8):
        model = DiT(out_channels=8, patch_size=p, num_classes=1000, **dit_kwargs(size))
        shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 4)),
                                jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
        count = sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))
        paper = PAPER_PARAMS_M[(size, p)] * 1e6
        assert abs(count - paper) <= 0.01 * paper, (size, p, count, paper)


def test_a_size_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="'S', 'B', 'L', 'XL'"):
        dit_kwargs("M")


# -- conditioning ------------------------------------------------------------------------


@pytest.mark.slow  # ~15 s of CPU; test_time_label_and_context_change_the_output is fast
def test_cross_attention_learns_a_target_only_the_context_predicts():
    """A toy conditioning source: each example's context is a random sequence (L=3 tokens
    of width 4) and the target image is constant, equal to sum_l ctx[l, 0] / sqrt(L) (a
    function of the set of tokens: the context has no positions). The input is noise
    independent of it, so without the context the best mean squared error is its
    variance, 1; through cross-attention the model gets far below."""
    model = DiT(out_channels=1, patch_size=2, hidden_size=32, depth=2, num_heads=2,
                cross_attention=True)
    tx = optax.adam(3e-3)

    def batch(key, n=32):
        kx, kc = jax.random.split(key)
        ctx = jax.random.normal(kc, (n, 3, 4))
        value = jnp.sum(ctx[:, :, 0], axis=1) / jnp.sqrt(3.0)
        target = jnp.broadcast_to(value[:, None, None, None], (n, 4, 4, 1))
        return jax.random.normal(kx, (n, 4, 4, 1)), ctx, target

    def loss_fn(params, key):
        x, ctx, target = batch(key)
        out = model.apply({"params": params}, x, jnp.zeros((x.shape[0],)), None, ctx)
        return jnp.mean((out - target) ** 2)

    x, ctx, _ = batch(jax.random.key(0))
    params = jax.jit(model.init)(jax.random.key(1), x, jnp.zeros((32,)), None, ctx)["params"]

    @jax.jit
    def train(params):
        def step(carry, key):
            params, opt = carry
            loss, g = jax.value_and_grad(loss_fn)(params, key)
            updates, opt = tx.update(g, opt, params)
            return (optax.apply_updates(params, updates), opt), loss
        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)),
                                           jax.random.split(jax.random.key(2), 300))
        return params, losses

    params, losses = train(params)
    held_out = float(loss_fn(params, jax.random.key(99)))  # fresh contexts
    assert float(losses[0]) > 0.5  # the zero-initialised model starts near Var = 1
    assert held_out < 0.1, (float(losses[0]), held_out)
