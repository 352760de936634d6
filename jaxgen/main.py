"""Command-line entry: flags -> train / sample / eval.

  python -m jaxgen.main --config=configs/ddpm_digits.py[:smoke] --workdir=runs/x \
      [--config.train.num_steps=100 ...] [--mode=train|sample|eval]
  python -m jaxgen.main --workdir=runs/x --mode=sample   # uses runs/x/config.json
  python -m jaxgen.main --workdir=runs/x --mode=sample --config=configs/ddpm_digits.py \
      --config.sampler.method=ddim --config.sampler.num_steps=50
  python -m jaxgen.main ... --coordinator_address=host0:1234 --num_processes=N \
      --process_id=RANK            # one process per host (see jaxgen/train/distributed.py)

In sample/eval mode the run's saved config is used; a ``--config`` given as well supplies
the fields that may change (seed, sampler, data, train.eval_batches), and its family,
model and diffusion fields must equal the run's.

Exit codes: 0 done, or stopped by SIGTERM/SIGINT after saving a checkpoint (rerun the
same command to continue); 1 non-finite loss or gradients (train.on_nonfinite='stop');
2 bad config, data source or workdir (reported before anything is compiled or written),
or no checkpoint of the run can be restored. Errors are one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
MODES = ("train", "sample", "eval")

config_flags.DEFINE_config_file("config", None, "Path to a config file, optionally `:arg`.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.DEFINE_enum("mode", "train", MODES, "What to do with the config.")
flags.DEFINE_integer("num_samples", None, "Samples to draw in --mode=sample "
                     "(default: config.sampler.num_samples).")
flags.DEFINE_string("coordinator_address", None, "Multi-process runs: host:port of process "
                    "0's jax.distributed coordinator (or env JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Multi-process runs: the number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process runs: this process's rank.")
flags.DEFINE_enum("distributed", "off", ["off", "auto"], "'auto': join a multi-process run "
                  "described by the cluster environment (TPU pod, SLURM, Open MPI).")
flags.DEFINE_boolean("allow_fresh_start", False, "Train from step 0 when the workdir holds "
                     "checkpoints but none can be restored (they are kept, renamed "
                     "<step>.damaged); without it such a run stops with exit code 2.")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _config_search_path(argv) -> None:
    """Experiment configs import ``configs.base``: make the folder holding ``configs/``
    importable wherever the command is run from."""
    for arg in argv:
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1].split(":", 1)[0]
            root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
            if root not in sys.path:
                sys.path.insert(0, root)


def _parse(argv):
    _config_search_path(argv)
    try:
        return FLAGS(argv)
    except flags.Error as e:
        _fail(str(e).splitlines()[0])
    except Exception as e:  # errors raised by the config file itself (e.g. a bad :arg)
        _fail(f"--config: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def main(argv) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}")
    if not FLAGS.workdir:
        _fail("--workdir is required, e.g. --workdir=runs/demo")

    from jaxgen.errors import ConfigError, DataError
    from jaxgen.train import checkpoint, distributed, loop, validation

    try:
        distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id, FLAGS.distributed)
    except ValueError as e:
        _fail(str(e))

    workdir = FLAGS.workdir
    config = FLAGS.config
    if config is None and FLAGS.mode == "train":
        _fail("--config is required to train, e.g. --config=configs/ddpm_digits.py")
    try:
        if FLAGS.mode != "train":
            # Sample/eval the run as trained; --config may change only what is overridable.
            from jaxgen import api
            saved = checkpoint.load_config(workdir)
            config = saved if config is None else api.inference_config(saved, config)
        validation.validate(config, workdir)
        pipeline = loop.open_data(config, config.data.eval_split if FLAGS.mode == "eval" else None)
        validation.check_data_fits(config, pipeline.element_shape, pipeline.num_classes,
                                   trained_shape=validation.trained_example_shape(workdir))
    except FileNotFoundError as e:
        _fail(str(e))
    except ConfigError as e:
        _fail(str(e))
    except DataError as e:
        _fail(f"data: {e}")

    try:
        if FLAGS.mode == "train":
            loop.train(config, workdir, allow_fresh_start=FLAGS.allow_fresh_start)
            return
        from jaxgen import api
        run = api.restore(workdir, config)
    except loop.Preempted as e:
        print(e)
        return
    except loop.NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except checkpoint.CheckpointError as e:
        _fail(f"{e}; rerun with --allow_fresh_start to train from step 0"
              if FLAGS.mode == "train" else str(e))
    except FileNotFoundError as e:
        _fail(str(e))
    if FLAGS.mode == "sample":
        n = FLAGS.num_samples or config.sampler.num_samples
        print(f"wrote {run.save_samples(os.path.join(workdir, 'samples.png'), n)}")
    else:
        from jaxgen.train import evaluation, report
        metrics = run.evaluate(pipeline, num_batches=config.train.eval_batches)
        metrics.update(evaluation.sample_quality(config, run.family, run.state.ema_params,
                                                 loop.keys(config.seed)["eval"], workdir))
        with open(os.path.join(workdir, "eval.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        print(json.dumps(metrics))
        print(f"wrote {report.write_report(workdir)}")


def run() -> None:
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # orbax and tfds log every step at INFO
    app.run(main, flags_parser=_parse)


if __name__ == "__main__":
    run()
