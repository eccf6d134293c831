"""Reading through a local ``tf.data`` service (a dispatcher and two workers in this process): the same
counts as reading directly, corrupt files counted as skipped, and the settings it cannot honour refused."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import tensorflow as tf
from h5_files import assert_same_file
from PIL import Image
from toy import toy_model

from summit_tf import data
from summit_tf.aggregation.config import AggregateConfig
from summit_tf.aggregation.run import aggregate_model

SIZE = 17
SYNSETS = {"n01440764": 7, "n02102040": 6}  # classes 0 and 217


@pytest.fixture(scope="module")
def service():
    dispatcher = tf.data.experimental.service.DispatchServer()
    address = dispatcher.target.split("://")[1]
    workers = [tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(dispatcher_address=address)) for _ in range(2)]
    yield dispatcher.target
    for worker in workers:
        worker.stop()
    dispatcher.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for synset, count in SYNSETS.items():
        (root / synset).mkdir()
        for i in range(count):
            pixels = rng.integers(0, 256, (24 + i, 31, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / synset / f"{i}.JPEG", quality=90)
    (root / "n02102040" / "corrupt.JPEG").write_bytes(b"not a jpeg")
    return root


def opener_for(model):
    def opener(cfg):
        def open_source(skip):
            loaded = data.load(cfg.data, image_size=model.input_size, batch_size=cfg.batch_size,
                               skip_records=skip, classes=cfg.classes, data_service=cfg.data_service)
            assert ("DataService" in type(loaded.dataset).__name__) == (cfg.data_service is not None)
            return loaded
        return open_source
    return opener


def test_counts_equal_direct_reading(tmp_path, service, folder):
    model = toy_model(SIZE)
    direct = AggregateConfig(model="toy", data=f"folder:{folder}", out=str(tmp_path / "direct.h5"),
                             batch_size=3)
    via = dataclasses.replace(direct, out=str(tmp_path / "service.h5"), data_service=service,
                              checkpoint_minutes=0)
    first = aggregate_model(direct, model, opener_for(model), io.StringIO())
    second = aggregate_model(via, model, opener_for(model), io.StringIO())
    assert first.images == second.images == sum(SYNSETS.values()) and first.skipped == second.skipped == 1
    assert_same_file(direct.out, via.out)


def test_what_the_service_cannot_do(service, folder, tmp_path):
    with pytest.raises(ValueError, match="grpc://HOST:PORT"):
        AggregateConfig(model="m", data="d", out="o", data_service="localhost:5050", checkpoint_minutes=0)
    with pytest.raises(ValueError, match="checkpoint_minutes=0"):
        AggregateConfig(model="m", data="d", out="o", data_service="grpc://localhost:5050")
    with pytest.raises(ValueError, match="folder: and labels:"):
        data.load(f"tfrecord:{tmp_path}/*.tfrecord", image_size=SIZE, data_service=service)
    with pytest.raises(ValueError, match="cannot resume"):
        data.load(f"folder:{folder}", image_size=SIZE, data_service=service, skip_records=2)
