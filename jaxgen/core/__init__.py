"""Math shared by the model families: input checks that raise one-line ValueErrors,
Gaussian densities and KLs, and per-example random keys. jax, numpy and chex only."""
