"""Converts pytorch-fid's InceptionV3 weights to the .npz that jaxgen's FID network reads.

Needs PyTorch (``pip install torch``, or ``make bench`` which installs the ``peers``
extra); torchvision and pytorch-fid are not needed. Get the weights from the pytorch-fid
GitHub release (https://github.com/mseitzer/pytorch-fid/releases, tag ``fid_weights``):

  wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
  python experiments/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth inception_fid.npz

The file is the TF "inception-2015-12-05" graph of the original FID code (Heusel et al.
2017) ported to PyTorch. The output holds one float32 array per ``state_dict`` entry,
same key, PyTorch layout (the format is in ``jaxgen/nets/inception_weights.py``); the
``num_batches_tracked`` counters are dropped. The state dict is checked against the
network (every key and shape) before anything is written, and the SHA-256 of both files
is printed: the features' ``sha256`` attribute is that of the .npz.

Then, in Python::

  from jaxgen import metrics
  ext = metrics.inception_extractor("inception_fid.npz", input_shape=(32, 32, 3))
  features = metrics.extract_features(ext, images)   # images in [-1, 1] -> (N, 2048)
"""

import argparse
import os
import re
import sys

import numpy as np

from jaxgen.nets.inception_weights import file_sha256, variables_from_state_dict


def convert(src: str, dst: str) -> dict:
    """Reads the PyTorch state dict at ``src``, checks it, writes the .npz ``dst``.

    Args:
        src: pytorch-fid's ``.pth`` (a ``state_dict``).
        dst: output path of the ``.npz``.

    Returns:
        The arrays written, key -> float32 numpy array.

    Raises:
        ValueError: the state dict is not the FID InceptionV3 (names the bad keys).
    """
    import torch

    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{src} holds a {type(state).__name__}, expected a state_dict")
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()
              if not k.endswith(".num_batches_tracked")}
    variables_from_state_dict(arrays, include_logits=True, source=src)  # raises if wrong
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:   # a file object, so numpy does not append ".npz"
        np.savez(f, **arrays)
    os.replace(tmp, dst)        # no half-written output if interrupted
    return arrays


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="pt_inception-2015-12-05-6726825d.pth from pytorch-fid")
    ap.add_argument("dst", help="output .npz")
    args = ap.parse_args(argv)
    src_hash = file_sha256(args.src)
    # PyTorch hub names files <name>-<first hex digits of the SHA-256>.pth.
    tag = re.search(r"-([0-9a-f]{8,})\.pth?$", os.path.basename(args.src))
    if tag and not src_hash.startswith(tag.group(1)):
        print(f"warning: SHA-256 of {args.src} is {src_hash}, which does not start with "
              f"{tag.group(1)} as its name says; the download may be corrupt", file=sys.stderr)
    arrays = convert(args.src, args.dst)
    print(f"{args.src}: sha256 {src_hash}")
    print(f"wrote {args.dst}: {len(arrays)} arrays, "
          f"{sum(a.size for a in arrays.values()):,} numbers, sha256 {file_sha256(args.dst)}")


if __name__ == "__main__":
    main()
