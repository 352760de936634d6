"""The FID InceptionV3: parameter count, weight-file format and loader, shapes, resize.

The real weights are not available here, so every test runs on random weights with
non-trivial batch-norm statistics. The network compiles twice for the whole file (batch
2 at 299x299, without and with logits); every image size goes through the same program.
"""

import hashlib
import importlib.util
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict, unflatten_dict

from jaxgen.nets import inception as inc
from jaxgen.nets.inception import InceptionV3, apply_inception, preprocess
from jaxgen.metrics import INCEPTION_NAME, extract_features, inception_extractor, load_extractor
from jaxgen.nets.inception_weights import (expected_state_dict_shapes, load_inception_variables,
                                           variables_from_state_dict)

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The file format: Flax leaf -> PyTorch state_dict suffix, written out here on purpose
# (not imported) so that the test states the format independently of the loader.
TORCH_SUFFIX = {("params", "kernel"): "weight", ("params", "scale"): "weight",
                ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
                ("batch_stats", "var"): "running_var"}


def n_params(tree):
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _shapes(include_logits):
    return jax.eval_shape(InceptionV3(include_logits=include_logits).init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))


def _to_torch_layout(flat):
    """Flattened Flax variables -> the documented .npz dict (PyTorch keys and layout)."""
    out = {}
    for (collection, *modules, leaf), arr in flat.items():
        key = ".".join([*modules, TORCH_SUFFIX[(collection, leaf)]])
        if arr.ndim == 4:
            arr = arr.transpose(3, 2, 0, 1)      # HWIO -> OIHW
        elif arr.ndim == 2:
            arr = arr.T                          # (in, out) -> (out, in)
        out[key] = np.ascontiguousarray(arr)
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random variables (with fc), their state dict in file format, and the .npz path."""
    rng = np.random.default_rng(0)
    flat = {}
    for path, leaf in flatten_dict(_shapes(True)).items():
        name = path[-1]
        if name == "kernel":
            # He-scaled so that ReLU activations keep an O(1) scale through 48 layers.
            std = math.sqrt(2.0 / math.prod(leaf.shape[:-1]))
            value = std * rng.standard_normal(leaf.shape)
        elif name == "scale":
            value = rng.uniform(0.5, 1.5, leaf.shape)
        elif name == "var":
            value = rng.uniform(0.5, 2.0, leaf.shape)
        else:  # bias, mean
            value = 0.1 * rng.standard_normal(leaf.shape)
        flat[path] = value.astype(np.float32)
    state = _to_torch_layout(flat)
    path = tmp_path_factory.mktemp("inception") / "weights.npz"
    np.savez(path, **state)
    with_fc = jax.device_put(unflatten_dict(flat))
    without_fc = jax.device_put(unflatten_dict({p: v for p, v in flat.items() if p[1] != "fc"}))
    return {"with_fc": with_fc, "without_fc": without_fc, "state": state, "path": path}


def _images(shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def test_parameter_count_matches_torchvision_inception_v3():
    # torchvision documents 27,161,264 parameters for inception_v3 (Inception_V3_Weights.
    # IMAGENET1K_V1: 1000 classes, with the auxiliary classifier). pytorch-fid's network is
    # that one with aux_logits=False and num_classes=1008. The aux head (torchvision
    # InceptionAux): 1x1 conv 768->128 + BN, 5x5 conv 128->768 + BN, Linear(768, 1000).
    torchvision_total = 27_161_264
    aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    pool3 = torchvision_total - aux - (2048 * 1000 + 1000)
    assert pool3 == 21_785_568
    assert n_params(_shapes(False)["params"]) == pool3
    assert n_params(_shapes(True)["params"]) == pool3 + 2048 * 1008 + 1008 == 23_850_960


def test_file_keys_and_shapes_follow_pytorch_fid():
    shapes = expected_state_dict_shapes(include_logits=True)
    # 94 conv-BN-ReLU units (stem 5, 3 x A 7, B 4, 4 x C 10, D 6, 2 x E 9) with five
    # tensors each, and the fc weight and bias.
    assert len(shapes) == 94 * 5 + 2
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)     # kernel (1, 7)
    assert shapes["Mixed_6e.branch7x7dbl_2.conv.weight"] == (192, 192, 7, 1)  # kernel (7, 1)
    assert shapes["Mixed_7c.branch3x3_2a.conv.weight"] == (384, 384, 1, 3)
    assert shapes["Mixed_7c.branch3x3dbl_2.bn.running_var"] == (384,)
    assert shapes["fc.weight"] == (1008, 2048) and shapes["fc.bias"] == (1008,)
    assert not any(k.startswith("fc.") for k in expected_state_dict_shapes(include_logits=False))


def test_preprocess_resize_is_bilinear_half_pixel_without_antialiasing():
    """Against PyTorch's align_corners=False formula, written out in numpy."""

    def matrix(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        frac = src - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1 - frac)
        np.add.at(m, (np.arange(n_out), i1), frac)
        return m

    for h, w in [(28, 28), (400, 333)]:   # up- and downsampling
        x = _images((1, h, w, 1), seed=h)
        want = matrix(h, 299) @ x[0, :, :, 0].astype(np.float64) @ matrix(w, 299).T
        got = np.asarray(preprocess(jnp.asarray(x)))
        assert got.shape == (1, 299, 299, 3)
        for c in range(3):
            np.testing.assert_allclose(got[0, :, :, c], want, atol=1e-6)
    x = _images((1, 299, 299, 3), seed=1)
    np.testing.assert_array_equal(np.asarray(preprocess(jnp.asarray(x))), x)


def test_preprocess_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    x = _images((2, 37, 50, 3), seed=2)
    want = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(299, 299),
                                           mode="bilinear", align_corners=False)
    got = np.asarray(preprocess(jnp.asarray(x)))
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_pools_ignore_padding():
    # count_include_pad=False: a constant image stays constant at the borders too (with
    # zero padding counted, a corner would be 4/9 of it); the max pool pads with -inf.
    ones = jnp.ones((1, 5, 6, 2))
    np.testing.assert_array_equal(inc._avg_pool_3x3(ones), ones)
    neg = -1.0 - jnp.arange(60.0).reshape(1, 5, 6, 2)
    out = np.asarray(inc._max_pool_3x3_same(neg))
    assert out.shape == neg.shape and out.max() < 0
    assert out[0, 0, 0, 0] == -1.0  # the window's largest valid value


def test_loading_round_trip_gives_identical_variables_and_outputs(weights):
    loaded = load_inception_variables(weights["path"])
    assert jax.tree.structure(loaded) == jax.tree.structure(weights["without_fc"])
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(weights["without_fc"])):
        np.testing.assert_array_equal(a, b)
    x = _images((2, 40, 48, 3), seed=3)
    want = np.asarray(apply_inception(weights["without_fc"], x))
    assert want.shape == (2, 2048) and np.isfinite(want).all() and want.std() > 0
    np.testing.assert_array_equal(np.asarray(apply_inception(loaded, x)), want)
    ext = inception_extractor(str(weights["path"]), (40, 48, 3))
    np.testing.assert_allclose(extract_features(ext, x, batch_size=2), want, rtol=1e-6,
                               atol=1e-6)
    assert ext.name == INCEPTION_NAME and ext.feature_dim == 2048
    sha = hashlib.sha256(weights["path"].read_bytes()).hexdigest()
    assert ext.config["weights_sha256"] == sha
    # eval.feature_net may name the .npz itself: the same extractor, the same hash.
    assert load_extractor(str(weights["path"]), input_shape=(40, 48, 3)).hash == ext.hash
    with pytest.raises(ValueError, match="input_shape"):
        load_extractor(str(weights["path"]))


def test_feature_shapes_grayscale_and_batching(weights, tmp_path):
    gray_ext = inception_extractor(str(weights["path"]), (28, 28, 1))
    rgb_ext = inception_extractor(str(weights["path"]), (28, 28, 3))
    assert gray_ext.hash != rgb_ext.hash  # the input shape is part of the identity

    def features(ext, images):
        return extract_features(ext, images, batch_size=2)

    gray = _images((3, 28, 28, 1), seed=4)   # 3 images: two batches, the last one padded
    f_gray = features(gray_ext, gray)
    assert f_gray.shape == (3, 2048) and f_gray.dtype == np.float32
    np.testing.assert_allclose(features(rgb_ext, np.repeat(gray, 3, axis=-1)), f_gray,
                               rtol=1e-6, atol=1e-6)
    # Padding the last batch must not change the features of the images in it.
    np.testing.assert_allclose(features(gray_ext, gray[2:]), f_gray[2:], rtol=1e-6, atol=1e-6)
    assert features(gray_ext, gray[:0]).shape == (0, 2048)
    # Different images give different features (the network is not constant).
    assert np.abs(f_gray[0] - f_gray[1]).max() > 1e-3 * np.abs(f_gray).max()
    # Saved and loaded like any extractor, apply function rebuilt from its kind.
    loaded = load_extractor(gray_ext.save(str(tmp_path)))
    assert loaded.hash == gray_ext.hash
    np.testing.assert_array_equal(features(loaded, gray), f_gray)


def test_logits_are_the_fc_layer_of_the_pool_features(weights):
    variables = load_inception_variables(weights["path"], include_logits=True)
    x = _images((2, 40, 48, 3), seed=3)
    pool, logits = apply_inception(variables, x, include_logits=True)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    np.testing.assert_allclose(pool, apply_inception(weights["without_fc"], x), rtol=1e-6, atol=1e-6)
    state = weights["state"]
    want = np.asarray(pool, np.float64) @ state["fc.weight"].T.astype(np.float64) + state["fc.bias"]
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_bad_files_name_every_bad_key(weights, tmp_path):
    state = dict(weights["state"])
    del state["Mixed_6e.branch_pool.bn.running_var"]
    state["AuxLogits.fc.weight"] = np.zeros((1000, 768), np.float32)
    # the classic mistake: a (1, 3) kernel stored as (3, 1)
    state["Mixed_7c.branch3x3_2a.conv.weight"] = np.zeros((384, 384, 3, 1), np.float32)
    path = tmp_path / "bad.npz"
    np.savez(path, **state)
    with pytest.raises(ValueError) as err:
        load_inception_variables(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "1 missing key: Mixed_6e.branch_pool.bn.running_var" in msg
    assert "1 unexpected key: AuxLogits.fc.weight" in msg
    assert ("1 mis-shaped key: Mixed_7c.branch3x3_2a.conv.weight has shape (384, 384, 3, 1), "
            "expected (384, 384, 1, 3)") in msg

    no_fc = {k: v for k, v in weights["state"].items() if not k.startswith("fc.")}
    with pytest.raises(ValueError, match="2 missing keys: fc.bias, fc.weight"):
        variables_from_state_dict(no_fc, include_logits=True)
    # PyTorch's BN bookkeeping is ignored, fc is optional without logits.
    tracked = {**no_fc, "Conv2d_1a_3x3.bn.num_batches_tracked": np.int64(0)}
    variables_from_state_dict(tracked, include_logits=False)

    with pytest.raises(ValueError, match="none of the expected keys"):
        variables_from_state_dict({"weight": np.zeros(3)})
    with pytest.raises(FileNotFoundError, match="convert_inception_weights"):
        load_inception_variables(tmp_path / "absent.npz")
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    pth.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="PyTorch checkpoint"):
        load_inception_variables(pth)


def test_input_checks(weights):
    with pytest.raises(ValueError, match="C = 1 or 3"):
        preprocess(jnp.zeros((2, 8, 8, 4)))
    with pytest.raises(ValueError, match="float images"):
        preprocess(jnp.zeros((2, 8, 8, 3), jnp.uint8))
    with pytest.raises(ValueError, match="299, 299, 3"):
        InceptionV3(resize_input=False).apply(weights["without_fc"], jnp.zeros((1, 64, 64, 3)))


def _torch_reference(state, images):
    """The FID InceptionV3 written independently with torch.nn.functional (NCHW).

    Follows pytorch-fid's fid_inception_v3 (torchvision Inception3 blocks, FID patches).
    """
    import torch
    import torch.nn.functional as F

    sd = {k: torch.from_numpy(v) for k, v in state.items()}

    def conv(x, name, stride=1, padding=0):
        x = F.conv2d(x, sd[name + ".conv.weight"], stride=stride, padding=padding)
        x = F.batch_norm(x, sd[name + ".bn.running_mean"], sd[name + ".bn.running_var"],
                         sd[name + ".bn.weight"], sd[name + ".bn.bias"], False, 0.0, 1e-3)
        return F.relu(x)

    def avg(x):
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    def block_a(x, m):
        b5 = conv(conv(x, m + ".branch5x5_1"), m + ".branch5x5_2", padding=2)
        b3 = conv(conv(x, m + ".branch3x3dbl_1"), m + ".branch3x3dbl_2", padding=1)
        b3 = conv(b3, m + ".branch3x3dbl_3", padding=1)
        return torch.cat([conv(x, m + ".branch1x1"), b5, b3, conv(avg(x), m + ".branch_pool")], 1)

    def block_c(x, m):
        b7 = conv(x, m + ".branch7x7_1")
        b7 = conv(b7, m + ".branch7x7_2", padding=(0, 3))
        b7 = conv(b7, m + ".branch7x7_3", padding=(3, 0))
        bd = conv(x, m + ".branch7x7dbl_1")
        for i, pad in zip(range(2, 6), [(3, 0), (0, 3), (3, 0), (0, 3)]):
            bd = conv(bd, f"{m}.branch7x7dbl_{i}", padding=pad)
        return torch.cat([conv(x, m + ".branch1x1"), b7, bd, conv(avg(x), m + ".branch_pool")], 1)

    def block_e(x, m, pool):
        b3 = conv(x, m + ".branch3x3_1")
        b3 = torch.cat([conv(b3, m + ".branch3x3_2a", padding=(0, 1)),
                        conv(b3, m + ".branch3x3_2b", padding=(1, 0))], 1)
        bd = conv(conv(x, m + ".branch3x3dbl_1"), m + ".branch3x3dbl_2", padding=1)
        bd = torch.cat([conv(bd, m + ".branch3x3dbl_3a", padding=(0, 1)),
                        conv(bd, m + ".branch3x3dbl_3b", padding=(1, 0))], 1)
        bp = conv(pool(x), m + ".branch_pool")
        return torch.cat([conv(x, m + ".branch1x1"), b3, bd, bp], 1)

    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = conv(x, "Conv2d_1a_3x3", stride=2)
    x = conv(x, "Conv2d_2a_3x3")
    x = F.max_pool2d(conv(x, "Conv2d_2b_3x3", padding=1), 3, 2)
    x = conv(x, "Conv2d_3b_1x1")
    x = F.max_pool2d(conv(x, "Conv2d_4a_3x3"), 3, 2)
    for m in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = block_a(x, m)
    b3 = conv(x, "Mixed_6a.branch3x3", stride=2)
    bd = conv(conv(x, "Mixed_6a.branch3x3dbl_1"), "Mixed_6a.branch3x3dbl_2", padding=1)
    bd = conv(bd, "Mixed_6a.branch3x3dbl_3", stride=2)
    x = torch.cat([b3, bd, F.max_pool2d(x, 3, 2)], 1)
    for m in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = block_c(x, m)
    b3 = conv(conv(x, "Mixed_7a.branch3x3_1"), "Mixed_7a.branch3x3_2", stride=2)
    b7 = conv(x, "Mixed_7a.branch7x7x3_1")
    b7 = conv(b7, "Mixed_7a.branch7x7x3_2", padding=(0, 3))
    b7 = conv(b7, "Mixed_7a.branch7x7x3_3", padding=(3, 0))
    b7 = conv(b7, "Mixed_7a.branch7x7x3_4", stride=2)
    x = torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)
    x = block_e(x, "Mixed_7b", avg)
    x = block_e(x, "Mixed_7c", lambda y: F.max_pool2d(y, 3, 1, 1))
    pool = x.mean(dim=(2, 3))
    return pool.numpy(), F.linear(pool, sd["fc.weight"], sd["fc.bias"]).numpy()


def test_matches_an_independent_torch_implementation(weights):
    """Catches layout errors a round trip cannot: OIHW vs HWIO, (1, 7) vs (7, 1), pools."""
    torch = pytest.importorskip("torch")
    variables = load_inception_variables(weights["path"], include_logits=True)
    for shape, seed in [((2, 40, 48, 3), 3), ((2, 28, 28, 1), 6)]:
        x = _images(shape, seed)
        with torch.no_grad():
            want_pool, want_logits = _torch_reference(weights["state"], x)
        pool, logits = apply_inception(variables, x, include_logits=True)
        np.testing.assert_allclose(pool, want_pool, rtol=1e-4, atol=1e-4 * np.abs(want_pool).max())
        np.testing.assert_allclose(logits, want_logits, rtol=1e-4,
                                   atol=1e-4 * np.abs(want_logits).max())


def test_convert_script_turns_a_pth_into_the_npz_format(weights, tmp_path):
    torch = pytest.importorskip("torch")
    state = {k: torch.from_numpy(v) for k, v in weights["state"].items()}
    state["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)
    src = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, src)
    spec = importlib.util.spec_from_file_location(
        "convert_inception_weights", ROOT / "experiments" / "convert_inception_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "inception.npz"
    script.main([str(src), str(out)])
    with np.load(out) as data:
        assert sorted(data.files) == sorted(weights["state"])
        for k in data.files:
            np.testing.assert_array_equal(data[k], weights["state"][k])
    # A state dict that is not the FID network is refused before anything is written.
    del state["fc.bias"]
    torch.save(state, src)
    with pytest.raises(ValueError, match="1 missing key: fc.bias"):
        script.main([str(src), str(tmp_path / "bad.npz")])
    assert not (tmp_path / "bad.npz").exists()
