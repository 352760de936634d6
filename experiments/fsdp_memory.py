"""Memory of DiT-L/2 and DiT-XL/2 train steps under FSDP, compiled for 8 devices (nothing
is allocated: the state is abstract and the step is only lowered and compiled).

For each model and each FSDP group size k (1 = data parallel, parameters replicated), the
step that ``python -m jaxgen.main`` compiles (the diffusion family's ``train_step`` behind
the non-finite guard, state donated, batch split over every device; and the bare
``train_step`` without the guard, to show what the guard costs) is compiled for a
(data, fsdp) = (8 / k, k) mesh of 8 devices, and XLA's memory analysis gives the bytes
one device holds: the training state (parameters, Adam moments, EMA), the batch, and the
temporaries of the step. The state's bytes are also counted from its shardings
(``sharding.bytes_per_device``), which must agree with XLA's argument size up to the
batch and the small replicated arrays.

On a CPU the 8 devices are simulated (``--xla_force_host_platform_device_count=8``, set
here before jax is imported); the compiled programs are those a GPU or TPU host with 8
devices would partition the same way (XLA's SPMD partitioner), but temporaries depend on
the backend's fusion and scheduling, so read them as indicative.

  python experiments/fsdp_memory.py [--models L/2,XL/2] [--batch 32] [--fsdp 1,8]
      [--guard on,off] [--no-remat]
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import dit_mnist  # noqa: E402
from jaxgen.train import loop, sharding, state as state_lib  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MIB = 2**20


def dit_config(size: str, patch: int, batch: int, fsdp: int, remat: bool):
    """The DiT of the paper at ``size`` on 32x32x4 latents, 1000 classes, under the
    diffusion family of configs/dit_mnist.py (rectified flow, label dropout)."""
    c = dit_mnist.get_config()
    c.model.dit_size = size
    c.model.patch_size = patch
    c.model.num_classes = 1000
    c.model.remat = remat
    c.train.batch_size = batch
    c.train.fsdp = fsdp
    return c


def measure(size: str, patch: int, batch: int, fsdp: int, remat: bool,
            guard: bool = True) -> dict:
    config = dit_config(size, patch, batch, fsdp, remat)
    family = loop.make_family(config, (32, 32, 4))
    mesh = sharding.make_mesh(fsdp=fsdp)
    key = jax.random.key(0)
    abstract = jax.eval_shape(family.init, key)
    state_sh = sharding.state_shardings(abstract, mesh)
    state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                         abstract, state_sh)
    repl, batch_sh = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    batch_in = {"x": jax.ShapeDtypeStruct((batch, 32, 32, 4), jnp.float32, sharding=batch_sh),
                "label": jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=batch_sh)}
    t0 = time.perf_counter()
    if guard:
        g = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl),
                         jax.eval_shape(state_lib.init_guard, 0))
        step_fn = loop.guarded_step(family, state_sh, mesh)
        compiled = step_fn.lower(state, g, batch_in, key).compile()
    else:  # the bare step, without the loop's non-finite guard
        step_fn = jax.jit(family.train_step, in_shardings=(state_sh, batch_sh, repl),
                          out_shardings=(state_sh, repl), donate_argnums=0)
        compiled = step_fn.lower(state, batch_in, key).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    params = sum(x.size for x in jax.tree.leaves(abstract.params))
    return {"model": f"DiT-{size}/{patch}", "params": int(params), "batch": batch,
            "mesh": dict(mesh.shape), "remat": remat, "guard": guard, "compile_s": round(compile_s, 1),
            "state_mib_per_device": sharding.bytes_per_device(state) / MIB,
            "state_mib_total": sum(x.size * x.dtype.itemsize
                                   for x in jax.tree.leaves(abstract)) / MIB,
            "xla_argument_mib": mem.argument_size_in_bytes / MIB,
            "xla_output_mib": mem.output_size_in_bytes / MIB,
            "xla_alias_mib": mem.alias_size_in_bytes / MIB,
            "xla_temp_mib": mem.temp_size_in_bytes / MIB}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="L/2,XL/2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--fsdp", default="1,8")
    ap.add_argument("--no-remat", action="store_true")
    ap.add_argument("--guard", default="on,off",
                    help="'on': the loop's step (non-finite guard included); 'off': "
                         "family.train_step alone; 'on,off': both")
    ap.add_argument("--out", default=os.path.join(RESULTS, "fsdp_memory.json"))
    a = ap.parse_args(argv)
    if jax.device_count() != 8:
        sys.exit(f"error: needs 8 devices, found {jax.device_count()} (XLA_FLAGS="
                 f"{os.environ.get('XLA_FLAGS')!r})")
    rows = []
    for name in a.models.split(","):
        size, patch = name.split("/")
        for k in (int(v) for v in a.fsdp.split(",")):
            for guard in a.guard.split(","):
                row = measure(size, int(patch), a.batch, k, not a.no_remat, guard == "on")
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = {"benchmark": "fsdp_memory", "date": datetime.datetime.now().isoformat(),
           "jax": jax.__version__, "backend": jax.default_backend(),
           "devices": jax.device_count(), "results": rows}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print("| model | mesh (data, fsdp) | guard | state MiB / device | of total | XLA args MiB | "
          "XLA temp MiB | compile s |\n|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        m = r["mesh"]
        print(f"| {r['model']} | ({m['data']}, {m['fsdp']}) | {'on' if r['guard'] else 'off'} | "
              f"{r['state_mib_per_device']:.0f} | "
              f"{r['state_mib_per_device'] / r['state_mib_total']:.3f} | "
              f"{r['xla_argument_mib']:.0f} | {r['xla_temp_mib']:.0f} | {r['compile_s']} |")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
