"""Rematerialised blocks (``remat=True``): the same function and gradients, less memory.

``nn.remat`` (``jax.checkpoint``) changes what the backward pass keeps, not the function:
a remat model must take the plain model's parameters (the UNet unchanged, the DiT's
stacked for its scan) and give the same loss gradients. The DiT's scanned remat blocks
must also need fewer temporary bytes in XLA's compiled gradient; the UNet's unrolled
remat blocks do not on XLA:CPU (its scheduler runs the recomputation early), so no memory
claim is tested for them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nets import DiT, UNet
from jaxgen.nets.dit import stack_blocks

# name -> (model for remat, input shape, plain params -> remat params, memory must drop)
CASES = {
    "unet": (lambda remat: UNet(out_channels=1, block_channels=(8, 16),
                                attention=(False, True), num_groups=4, head_dim=8,
                                remat=remat), (4, 8, 8, 1), lambda p: p, False),
    "dit": (lambda remat: DiT(out_channels=1, patch_size=2, hidden_size=64, depth=4,
                              num_heads=4, remat=remat), (16, 16, 16, 1),
            lambda p: stack_blocks(p, 4), True),
}


@pytest.mark.parametrize("name", ["dit", pytest.param("unet", marks=pytest.mark.slow)])
def test_remat_keeps_parameters_and_gradients_and_saves_memory(name):
    make, shape, convert, saves_memory = CASES[name]
    x = jax.random.normal(jax.random.key(0), shape)
    t = jnp.arange(shape[0], dtype=jnp.int32) * 100
    plain, remat = make(False), make(True)
    params = jax.jit(plain.init)(jax.random.key(1), x, t)["params"]
    # Perturb the zero-initialised output layers so that every block gets a gradient.
    params = jax.tree.map(lambda p: p + 0.02 * jax.random.normal(jax.random.key(2), p.shape),
                          params)
    remat_params = convert(params)
    assert (jax.tree.structure(jax.eval_shape(remat.init, jax.random.key(1), x, t)["params"])
            == jax.tree.structure(remat_params))

    def grad_fn(model):
        def loss(p):
            return jnp.mean(model.apply({"params": p}, x, t, train=True) ** 2)
        return jax.jit(jax.value_and_grad(loss))

    plain_grad, remat_grad = grad_fn(plain).lower(params), grad_fn(remat).lower(remat_params)
    plain_grad, remat_grad = plain_grad.compile(), remat_grad.compile()
    (l0, g0), (l1, g1) = plain_grad(params), remat_grad(remat_params)
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(convert(g0)), jax.tree.leaves(g1)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    if saves_memory:
        temp = lambda c: c.memory_analysis().temp_size_in_bytes
        assert temp(remat_grad) < 0.7 * temp(plain_grad), (temp(plain_grad), temp(remat_grad))
