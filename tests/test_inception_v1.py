"""InceptionV1 adapter on a GraphDef with Lucid's exact structure and random weights (inception_fixture)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from cli_errors import assert_module_exits_2, assert_one_error_line

from summit_tf import check_inception_v1, imagenet, models
from summit_tf.assets import download
from summit_tf.models import inception_v1
from summit_tf.models.graphdef import import_reference
from synthetic import __main__ as synthetic_cli
from synthetic import inception_v1 as fx

CHANNELS = [256, 480, 508, 512, 512, 528, 832, 832, 1024]
BRANCHES = ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce")
BRANCH_NODES = [f"{L}_{b}" for L in fx.MIXED for b in BRANCHES]


@pytest.fixture(scope="module")
def graph_def():
    return fx.build_graph_def()


@pytest.fixture(scope="module")
def files(tmp_path_factory, graph_def):
    return fx.write_fixture(tmp_path_factory.mktemp("inception"), graph_def)


@pytest.fixture(scope="module")
def images():
    size = fx.INPUT_SIZE
    return tf.constant(np.random.default_rng(1).uniform(0, 1, (2, size, size, 3)), tf.float32)


@pytest.fixture(scope="module")
def model(files):
    return inception_v1.load(str(files[0]))


@pytest.fixture(scope="module")
def feats(model, images):
    return {k: v.numpy() for k, v in model.features(images).items()}


@pytest.fixture(scope="module")
def reference_fn(graph_def):
    """TF's own executor on the same GraphDef: f(network input) -> tensors by node name."""
    wanted = list(fx.MIXED) + ["maxpool4", "maxpool10", "softmax2_pre_activation", "output", "output2"]
    wanted += [f"{n}_pre_relu/conv" for n in BRANCH_NODES] + BRANCH_NODES
    wanted += [f"{L}_pool" for L in fx.MIXED]
    run = import_reference(graph_def, wanted)
    return lambda x: {k: v.numpy() for k, v in run(x).items()}


@pytest.fixture(scope="module")
def reference(reference_fn, images, model):
    return reference_fn(model.scale(images))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(b)), 1e-12))


def test_layers_channels_and_links(model):
    assert model.layers == list(fx.MIXED)
    assert [model.channels[layer] for layer in model.layers] == CHANNELS
    assert sum(CHANNELS) == 5484
    assert model.value_range == (-117.0, 138.0) and model.input_size == 224
    assert len(model.links) == 8 * 6
    assert len(model.inner_channels) == 16
    assert model.inner_channels["mixed4a/3x3_bottleneck"] == 96
    assert model.inner_channels["mixed5a/5x5_bottleneck"] == 48
    by_name = {link.name: link for link in model.links}
    assert set(by_name) == {f"{L}/{b}" for L in list(fx.MIXED)[1:] for b in BRANCHES}
    m4a = {b: by_name[f"mixed4a/{b}"] for b in BRANCHES}
    one = m4a["1x1"]
    assert (one.src, one.dst, one.input, one.kind) == ("mixed3b", "mixed4a", "maxpool4", "1x1")
    assert (m4a["3x3_bottleneck"].dst, m4a["3x3_bottleneck"].input) == ("mixed4a/3x3_bottleneck", "maxpool4")
    assert (m4a["3x3"].src, m4a["3x3"].input, m4a["3x3"].kind) == ("mixed4a/3x3_bottleneck",) * 2 + ("conv",)
    assert m4a["3x3"].kernel.shape == (3, 3, 96, 204)
    assert m4a["pool_reduce"].input == "mixed4a/pool"
    assert [m4a[b].dst_offset for b in ("1x1", "3x3", "5x5", "pool_reduce")] == [0, 192, 396, 444]
    assert by_name["mixed5a/1x1"].input == "maxpool10" and by_name["mixed4b/1x1"].input == "mixed4a"
    for link in model.links:
        assert (link.stride, link.padding) == (1, "SAME")
        assert link.cin == model.channel_spaces()[link.src]
        assert link.dst_offset + link.cout <= model.channel_spaces()[link.dst]


def test_features_have_every_layer_link_input_and_logits(model, feats):
    expected = set(model.layers) | {link.input for link in model.links} | {"logits"}
    assert set(feats) == expected
    assert feats["logits"].shape == (2, 1008)
    for layer, c in zip(model.layers, CHANNELS, strict=True):
        assert feats[layer].shape[-1] == c


def test_features_equal_tf_graph_import(feats, reference):
    assert _rel(feats["logits"], reference["softmax2_pre_activation"]) < 1e-5
    for layer in fx.MIXED:
        assert _rel(feats[layer], reference[layer]) < 1e-5, layer
    for key in ("maxpool4", "maxpool10", "mixed4c/pool", "mixed5b/3x3_bottleneck"):
        assert _rel(feats[key], reference[key.replace("/", "_")]) < 1e-5, key
    # The main classifier, not the auxiliary head behind `output`.
    probs = tf.nn.softmax(feats["logits"]).numpy()
    assert _rel(probs, reference["output2"]) < 1e-5
    assert _rel(probs, reference["output"]) > 1e-2


def test_each_link_reproduces_its_branch(model, feats, reference):
    for link in model.links:
        layer, branch = link.name.split("/")
        pre = tf.nn.conv2d(feats[link.input], link.kernel, link.stride, link.padding).numpy()
        conv = reference[f"{layer}_{branch}_pre_relu/conv"]
        assert pre.shape == conv.shape, link.name
        assert _rel(pre, conv) < 1e-4, link.name
        if link.dst == layer:  # the branch's ReLU output fills the concat at dst_offset
            out = feats[layer][..., link.dst_offset:link.dst_offset + link.cout]
            assert _rel(out, reference[f"{layer}_{branch}"]) < 1e-5, link.name


def test_summit_compat_inputs_and_scaling(files, reference_fn, images, model):
    compat = inception_v1.load(str(files[0]), summit_compat=True, layers=["mixed3b", "mixed4a"])
    assert compat.value_range == (-372.0, 138.0)
    by_name = {link.name: link for link in compat.links}
    unpooled = ("1x1", "3x3_bottleneck", "5x5_bottleneck", "pool_reduce")
    assert {by_name[f"mixed4a/{b}"].input for b in unpooled} == {"mixed3b"}
    assert by_name["mixed4a/3x3"].input == "mixed4a/3x3_bottleneck"
    ref_links = {link.name: link for link in model.links}
    for name, link in by_name.items():
        np.testing.assert_array_equal(link.kernel, ref_links[name].kernel)
    x = images[:1]
    got = compat.features(x)
    assert set(got) == {"mixed3b", "mixed4a", "mixed4a/3x3_bottleneck", "mixed4a/5x5_bottleneck", "logits"}
    fed = (2.0 * x - 1.0) * 255.0 - 117.0  # [-1, 1] pixels fed as if they were [0, 1]
    assert float(tf.reduce_min(fed)) < -300
    ref = reference_fn(fed)
    assert _rel(got["mixed3b"].numpy(), ref["mixed3b"]) < 1e-5
    assert _rel(got["logits"].numpy(), ref["softmax2_pre_activation"]) < 1e-5


def test_layer_subset_keeps_links_between_selected_neighbours(files):
    sub = inception_v1.load(str(files[0]), layers=["mixed5b", "mixed3b", "mixed4a"])
    assert sub.layers == ["mixed3b", "mixed4a", "mixed5b"]
    assert sorted({link.name.split("/")[0] for link in sub.links}) == ["mixed4a"]
    assert set(sub.inner_channels) == {"mixed4a/3x3_bottleneck", "mixed4a/5x5_bottleneck"}
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['mixed6a'\].*mixed3a"):
        inception_v1.load(str(files[0]), layers=["mixed6a"])


def test_class_to_output_from_alternate_synsets(model):
    lines = fx.alternate_synsets()
    synsets = imagenet.synsets()
    for c in (0, 1, 500, 999):
        expected = lines.index(synsets[c]) if synsets[c] in lines else -1
        assert model.class_to_output[c] == expected
    assert (model.class_to_output >= 0).sum() == 990
    assert model.class_to_output.max() < 1008


def test_relu_redirect_keeps_forward_and_gives_gradients(model, images, feats):
    with tf.GradientTape() as tape:
        tape.watch(images)
        redirected = model.features(images, relu_redirect=True)
        loss = -tf.reduce_mean(redirected["mixed3a"][..., 5])
    for key in ("mixed3a", "mixed4a/pool", "logits"):
        np.testing.assert_array_equal(feats[key], redirected[key].numpy())
    grad = tape.gradient(loss, images)
    assert grad is not None and np.isfinite(grad.numpy()).all() and float(tf.reduce_max(tf.abs(grad))) > 0


def test_check_against_import_covers_every_feature(files, model):
    errors = inception_v1.check_against_import(str(files[0]), batch=1)
    assert set(errors) == {link.input for link in model.links} | set(model.layers) | {"logits"}
    assert max(errors.values()) < 1e-5


def test_check_cli_bad_path_is_one_line_exit_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "summit_tf.check_inception_v1", f"--path={tmp_path}/no.pb"],
                         capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "error: InceptionV1 GraphDef not found" in run.stderr and "Traceback" not in run.stderr


def test_registry_spec_and_bad_file(files, tmp_path):
    m = models.load(f"inception_v1:{files[0]}", layers=["mixed3a"])
    assert m.spec == f"inception_v1:{files[0]}" and m.links == []
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00\xffnot a graph")
    with pytest.raises(ValueError, match="not a binary TensorFlow GraphDef"):
        inception_v1.load(str(bad))
    with pytest.raises(FileNotFoundError, match="InceptionV1 GraphDef not found"):
        inception_v1.load(str(tmp_path / "missing.pb"))


@pytest.fixture
def isolated(isolated_assets):
    return isolated_assets[1:]


def test_download_path_through_a_mirror(files, isolated):
    cache, mirror = isolated
    (mirror / "models").mkdir()
    for f in files:
        (mirror / "models" / f.name).write_bytes(f.read_bytes())
    m = inception_v1.load(None, layers=["mixed3a", "mixed3b"])
    assert m.spec == "inception_v1" and len(m.links) == 6
    assert (cache / "models" / "InceptionV1.pb").read_bytes() == files[0].read_bytes()
    assert (m.class_to_output >= 0).sum() == 990


def test_offline_error_is_clear(isolated):
    cache, _ = isolated
    with pytest.raises(download.AssetError) as err:
        inception_v1.load(None)
    message = str(err.value)
    assert "https://storage.googleapis.com/modelzoo/vision/other_models/InceptionV1.pb" in message
    assert str(cache / "models" / "InceptionV1.pb") in message


def test_check_cli_bad_flags_exit_2_with_one_error_line(capsys):
    assert "batch" not in flags.FLAGS  # importing defined no global absl flag
    for argv, mention in ((["--batch=two"], "--batch=two"), (["--batch=0"], "--batch=0")):
        assert check_inception_v1.main(["check_inception_v1", *argv]) == 2
        assert_one_error_line(capsys.readouterr().err, mention)
    assert_module_exits_2("summit_tf.check_inception_v1", "--pth=InceptionV1.pb", contains="pth")


def test_fixture_cli_writes_what_the_adapter_loads(tmp_path, capsys):
    assert synthetic_cli.main(["synthetic", f"--out={tmp_path}"]) == 0
    pb, labels = capsys.readouterr().out.split()
    got = tf.compat.v1.GraphDef()
    got.ParseFromString((tmp_path / "InceptionV1.pb").read_bytes())
    assert got == fx.build_graph_def() and pb == str(tmp_path / "InceptionV1.pb")  # fresh: TF's import
    # of the module's shared graph_def (reference_fn) may add default attributes to it
    assert labels == str(tmp_path / inception_v1.LABELS_FILE)
    assert models.load(f"inception_v1:{pb}").layers == list(fx.MIXED)
    assert synthetic_cli.main(["synthetic"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--out")
