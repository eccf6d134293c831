"""``tfds:NAME[/SPLIT]``: a prepared TensorFlow Datasets dataset, read without network access.

The data directory is TFDS's own choice (``$TFDS_DATA_DIR`` as TFDS read it on import, else
``~/tensorflow_datasets``, and any directory registered with ``tfds.core.add_data_dir``). Images are read as
encoded bytes (TFDS's decoder is skipped) so corrupt ones go through the same skip-and-count path as the
other sources. Labels map to ImageNet classes by synset when the dataset's class names are synsets
(``imagenet2012``, ``imagenette``), else they are used as class ids directly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from summit_tf import imagenet

SPEC_FORM = "tfds:NAME[/SPLIT]"


def _builder(name: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as err:
        raise ValueError(f"tfds:{name}: dataset not found ({str(err).splitlines()[0]}); expected {SPEC_FORM} "
                         f"naming a dataset prepared under $TFDS_DATA_DIR") from None


def _resolve(arg: str):
    """Split ``NAME[/CONFIG][/SPLIT]``: the last part is the split when the builder has it."""
    name, _, split = arg.rpartition("/")
    candidates = ([(name, split)] if name else []) + [(arg, "train")]
    found, error = [], None
    for candidate, candidate_split in candidates:
        try:
            builder = _builder(candidate)
        except ValueError as err:
            error = error or err
            continue
        if candidate_split.split("[")[0] in builder.info.splits:
            return builder, candidate_split
        found.append((builder, candidate_split))
    if found:
        return found[0]
    raise error


def _label_map(builder, name: str) -> np.ndarray | None:
    """class-name index -> ImageNet class, or None to use labels as they are."""
    feature = builder.info.features["label"]
    names = getattr(feature, "names", None) or []
    table = imagenet.synset_to_index()
    if names and all(n in table for n in names):
        return np.asarray([table[n] for n in names], dtype=np.int32)
    if getattr(feature, "num_classes", imagenet.NUM_CLASSES) > imagenet.NUM_CLASSES:
        raise ValueError(f"tfds:{name}: {feature.num_classes} classes whose names are not ImageNet synsets")
    return None


def records(arg: str) -> tuple[tf.data.Dataset, int]:
    """``{"encoded", "label"}`` records in the dataset's fixed order, and their number."""
    import tensorflow_datasets as tfds

    if not arg:
        raise ValueError(f"tfds: needs a dataset name, e.g. tfds:imagenette/validation ({SPEC_FORM})")
    builder, split = _resolve(arg)
    name = builder.info.full_name
    if not builder.is_prepared():
        raise ValueError(f"tfds:{arg}: {name} is not prepared under {builder.data_dir}; prepare it first "
                         f"(`tfds build {builder.name}`, or point TFDS_DATA_DIR at prepared data)")
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(f"tfds:{arg}: needs 'image' and 'label' features, has {', '.join(features.keys())}")
    splits = builder.info.splits
    base_split = split.split("[")[0]
    if base_split not in splits:
        raise ValueError(f"tfds:{arg}: no split {base_split!r}; splits: {', '.join(splits.keys())}")
    mapping = _label_map(builder, arg)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()},
                            read_config=tfds.ReadConfig(interleave_cycle_length=1))
    lookup = tf.constant(mapping) if mapping is not None else None

    def to_record(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        label = tf.cast(example["label"], tf.int32)
        if lookup is not None:
            label = tf.gather(lookup, label)
        label = tf.where((label >= 0) & (label < imagenet.NUM_CLASSES), label, -1)
        return {"encoded": example["image"], "label": label}

    return ds.map(to_record), splits[split].num_examples
