"""What every model adapter provides: layers, links between them, and one batched feature function.

A *channel space* is a named set of channels: every SUMMIT layer is one, and so is an inner stage that
SUMMIT reasons about (an InceptionV1 bottleneck such as ``mixed4b/3x3_bottleneck``). A :class:`Link` is
the exact linear map (a convolution kernel without bias) from one channel space to another; the
influence aggregation applies it, pair of channels by pair of channels, to the tensor named ``input``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

LINK_KINDS = ("conv", "1x1", "separable", "identity")
RELU_ACTIVATIONS = ("relu", "relu6")  # the activations Lucid's gradient redirect is defined for
# (images in [0, 1], tensor keys, relu_redirect) -> exactly those tensors
TensorsFn = Callable[[tf.Tensor, tuple[str, ...], bool], Mapping[str, tf.Tensor]]
# edit(key, tensor, lookup) -> the tensor the network goes on with; lookup(key) gives a tensor computed before
Edit = Callable[[str, tf.Tensor, Callable[[str], tf.Tensor]], tf.Tensor]
# (images in [0, 1], tensor keys, edit) -> those tensors, every editable tensor passed through edit
EditedFn = Callable[[tf.Tensor, tuple[str, ...], Edit], Mapping[str, tf.Tensor]]


def pre_activation_key(layer: str) -> str:
    """Key of a layer's pre-activation tensor (Lucid's ``mixed4a_pre_relu``): ``mixed4a/pre_activation``.

    ``/`` cannot occur in TFLite keys (joined with ``_``) nor in Keras layer names, so it never collides."""
    return f"{layer}/pre_activation"


def layer_of_key(key: str) -> str:
    """The layer a tensor key belongs to: ``layer`` for ``pre_activation_key(layer)`` and for ``layer``."""
    suffix = pre_activation_key("")
    return key[:-len(suffix)] if key.endswith(suffix) else key


@dataclass(frozen=True)
class Link:
    """A linear map between two channel spaces, as the network computes it.

    ``kernel`` is ``[kh, kw, cin, cout]``; it is cross-correlated with ``features()[input]`` using
    ``stride`` and ``padding`` (the conv's own). ``src``/``dst`` name the channel spaces of the kernel's
    input and output channels; when ``dst`` is a SUMMIT layer, output channel j is channel
    ``dst_offset + j`` of it (InceptionV1 branches fill slices of the concat). ``kind`` is ``"1x1"`` for
    pointwise kernels, ``"separable"`` for a pointwise kernel applied to a depthwise output (MobileNet:
    the input tensor is the depthwise stage's activation, one channel per ``src`` channel), ``"identity"``
    for a one-to-one link (a residual shortcut, a concatenated layer, a per-channel scale: the kernel is
    diagonal, output j reads input j only), else ``"conv"``. Skip links (``{dst}/skip/{src}``) have any kind.
    """

    name: str
    src: str
    dst: str
    input: str
    kernel: np.ndarray
    stride: int = 1
    padding: str = "SAME"
    dst_offset: int = 0
    kind: str = "conv"

    def __post_init__(self) -> None:
        if self.kernel.ndim != 4:
            raise ValueError(f"link {self.name}: kernel must be [kh, kw, cin, cout], got {self.kernel.shape}")
        if self.padding not in ("SAME", "VALID"):
            raise ValueError(f"link {self.name}: padding must be SAME or VALID, got {self.padding!r}")
        if self.kind not in LINK_KINDS:
            raise ValueError(f"link {self.name}: kind must be one of {LINK_KINDS}, got {self.kind!r}")
        matrix = self.kernel[0, 0]
        if self.kind == "identity" and (self.kernel.shape[:2] != (1, 1) or self.cin != self.cout
                                        or self.stride != 1 or np.any(matrix - np.diag(np.diag(matrix)))):
            raise ValueError(f"link {self.name}: an identity link needs a diagonal [1, 1, C, C] kernel, "
                             "stride 1")

    @property
    def cin(self) -> int:
        return int(self.kernel.shape[2])

    @property
    def cout(self) -> int:
        return int(self.kernel.shape[3])


@dataclass
class SummitModel:
    """A CNN as SUMMIT sees it.

    ``features(images)`` takes float32 ``[B, S, S, 3]`` images with values in ``[0, 1]`` (the model scales
    them into its own ``value_range``) and returns a dict with one entry per SUMMIT layer (post-activation,
    ``[B, H, W, C]``), one per link ``input`` key, and ``"logits"`` ``[B, num_outputs]``. Pass
    ``relu_redirect=True`` to use Lucid's ReLU gradient redirect (feature visualization) where supported.
    ``class_to_output[c]`` is the model output index of ImageNet class ``c`` (-1 where the model has none).

    ``tensors(images, keys)`` computes only the tensors named (any of :meth:`tensor_keys`) and what they
    depend on: feature visualization of an early layer must not run the later layers or the classifier
    (InceptionV1's 7x7 VALID average pool needs >= 224 px inputs). ``pre_activations`` maps a layer to the
    key of its tensor before its activation (``pre_activation_key(layer)``), where the layer has one;
    ``layer_activations`` names each layer's activation (``relu``, ``silu``, ``gelu``, ``linear`` for a sum).
    An adapter without ``tensors_fn`` (an opaque ``features_fn``) computes everything and picks the keys.

    Interventions (:mod:`summit_tf.intervene`) use ``edited_fn`` through :meth:`edited_tensors`: the
    network runs with an ``edit`` applied to each layer output and each link output as it is computed, so
    everything after it sees the edited tensor. ``link_outputs[link.name]`` is the key of the tensor in
    which the network sums that link's kernel output (``cout`` channels, before bias and activation are
    applied or after the bias: an edge cut subtracts a linear contribution either way). Links into one
    layer may share that tensor (a residual block's link and its skip link both end in the sum; each cut
    subtracts its own part); a link is absent where no such tensor exists.
    """

    spec: str
    layers: list[str]
    channels: dict[str, int]
    links: list[Link]
    input_size: int
    value_range: tuple[float, float]
    class_to_output: np.ndarray
    features_fn: Callable[..., Mapping[str, tf.Tensor]]
    inner_channels: dict[str, int] = field(default_factory=dict)
    supports_relu_redirect: bool = False
    description: str = ""
    tensors_fn: TensorsFn | None = None
    pre_activations: dict[str, str] = field(default_factory=dict)
    edited_fn: EditedFn | None = None
    link_outputs: dict[str, str] = field(default_factory=dict)
    layer_activations: dict[str, str] = field(default_factory=dict)

    def redirect_applies(self, keys: Sequence[str]) -> bool:
        """Whether Lucid's ReLU redirect applies to an objective reading ``keys``: where one of them is (the
        pre-activation of) a ReLU/ReLU6 layer, or of a concatenation of such branches. Other activations
        (swish, GELU, ...) and plain sums get none. Adapters without ``layer_activations``: everywhere."""
        if not self.layer_activations:
            return True
        layers = {layer_of_key(key) for key in keys}
        return any(self.layer_activations.get(layer) in RELU_ACTIVATIONS for layer in layers)

    def features(self, images: tf.Tensor, relu_redirect: bool = False) -> Mapping[str, tf.Tensor]:
        """Activations of every SUMMIT layer and link input, plus logits, for a batch in [0, 1]."""
        if relu_redirect and not self.supports_relu_redirect:
            raise ValueError(f"{self.spec}: ReLU gradient redirect is not supported by this adapter")
        if relu_redirect:
            return self.features_fn(images, relu_redirect=True)
        return self.features_fn(images)

    def tensor_keys(self) -> list[str]:
        """What :meth:`tensors` computes: layers, their pre-activations, link inputs and ``logits``."""
        return list(dict.fromkeys([*self.layers, *self.pre_activations.values(),
                                   *(link.input for link in self.links), "logits"]))

    def tensors(self, images: tf.Tensor, keys: Sequence[str],
                relu_redirect: bool = False) -> dict[str, tf.Tensor]:
        """Only the tensors ``keys`` for a batch in [0, 1], evaluating only what they depend on."""
        keys = tuple(dict.fromkeys(keys))
        known = self.tensor_keys()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"{self.spec}: unknown tensor(s) {unknown}; known: {', '.join(known)}")
        if relu_redirect and not self.supports_relu_redirect:
            raise ValueError(f"{self.spec}: ReLU gradient redirect is not supported by this adapter")
        if self.tensors_fn is None:
            values = self.features(images, relu_redirect=relu_redirect)
            return {k: values[k] for k in keys}
        return dict(self.tensors_fn(images, keys, relu_redirect))

    def edited_tensors(self, images: tf.Tensor, keys: Sequence[str], edit: Edit) -> dict[str, tf.Tensor]:
        """The tensors ``keys`` with ``edit(key, tensor, lookup)`` applied to every layer output and link
        output (:attr:`link_outputs`) as the network computes it; ``lookup(key)`` returns any tensor of
        :meth:`tensor_keys` that the edited one depends on (an edge cut reads its link's input). Plain
        Python: call it inside the caller's ``tf.function``."""
        if self.edited_fn is None:
            raise ValueError(f"{self.spec}: this adapter does not support interventions (no edited_fn)")
        keys = tuple(dict.fromkeys(keys))
        known = self.tensor_keys()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(f"{self.spec}: unknown tensor(s) {unknown}; known: {', '.join(known)}")
        return dict(self.edited_fn(images, keys, edit))

    def scale(self, images: tf.Tensor) -> tf.Tensor:
        """Map [0, 1] pixels into the model's value range."""
        lo, hi = self.value_range
        return images * (hi - lo) + lo

    def links_into(self, space: str) -> list[Link]:
        return [link for link in self.links if link.dst == space]

    def channel_spaces(self) -> dict[str, int]:
        """SUMMIT layers and inner spaces with their channel counts."""
        return {**self.channels, **self.inner_channels}

    def check_layers(self, names: Sequence[str]) -> list[str]:
        """Validate a layer selection, keeping network order; unknown names raise with the known ones."""
        unknown = [n for n in names if n not in self.channels]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} for {self.spec}; layers: {', '.join(self.layers)}")
        return [n for n in self.layers if n in set(names)]
