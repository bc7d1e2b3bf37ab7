"""Model configuration: one dataclass tree that round-trips through ``config.json``, and the
named architectures (:data:`ARCHITECTURES`, built by :func:`build_config`).

The same code path builds the full ``plip-rn50`` model and the tiny models used in tests;
only the numbers differ.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..utils.config import build_dataclass

#: Normalisation statistics of SYNTH-PEDES used by the official PLIP pipeline.
PLIP_MEAN: tuple[float, float, float] = (0.357, 0.323, 0.328)
PLIP_STD: tuple[float, float, float] = (0.252, 0.242, 0.239)


#: Image-tower kinds (``vision.kind``) and the heads each accepts (``vision.pool``).
VISION_KINDS: dict[str, tuple[str, ...]] = {
    "modified_resnet": ("attention", "max"),
    "timm": ("attention", "avg", "max", "token"),
}


@dataclass
class TimmTowerConfig:
    """A timm model as PLIP's image tower (``vision.kind: timm``).

    Attributes:
        model_name: a ``timm.list_models()`` name, e.g. ``swin_base_patch4_window7_224``.
        pretrained: where a *fresh* model's trunk weights come from before training:
            ``false`` (random init), ``true`` (timm's own weights: its cache or the Hub), or a
            local weights file (safetensors or a PyTorch state dict, adapted by timm to
            ``kwargs``). Recorded for provenance; loading a saved PLIP model never reads it
            (its weights are in ``model.safetensors``).
        kwargs: extra ``timm.create_model`` arguments (``window_size``, ``depths``, ...).
            ``img_size`` is ``vision.image_size`` for models that take one.
        out_indices: the feature stages the tower exposes (``forward_intermediates``, the TIC
            decoder), as indices into the timm model's ``feature_info``; empty = the last four.
    """

    model_name: str = ""
    pretrained: bool | str = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    out_indices: tuple[int, ...] = ()

    def validate(self) -> None:
        if not self.model_name:
            raise ConfigError("vision.timm.model_name is empty: name a timm model (timm.list_models())")
        if "img_size" in self.kwargs:
            raise ConfigError("vision.timm.kwargs must not set img_size: it is vision.image_size")
        if len(set(self.out_indices)) != len(self.out_indices) or any(i < 0 for i in self.out_indices):
            raise ConfigError(f"vision.timm.out_indices must be distinct indices >= 0, got {self.out_indices!r}")


@dataclass
class VisionConfig:
    """The image tower: PLIP's Modified ResNet (``kind: modified_resnet``) or a timm model (``kind: timm``).

    Attributes:
        layers: number of bottleneck blocks per stage (``[3, 4, 6, 3]`` for ResNet-50).
        width: channels after the stem (64 for ResNet-50); stage ``i`` outputs ``width * 4 * 2**i``.
        heads: attention heads of the attention-pool head.
        image_size: input (height, width); the positional embedding has
            ``(H/32) * (W/32) + 1`` rows.
        output_dim: size of the pooled embedding.
        last_stride: 2 as in the released model; 1 keeps layer4 at 1/16 resolution (BoT, MGN).
        pool: the image head: ``attention`` (attention pool, the released model), ``max``
            (global max-pool + linear, the paper's Table 16c default); timm towers also
            ``avg`` (global average + linear) and ``token`` (class token + linear).
        kind: ``modified_resnet`` or ``timm`` (then ``timm`` says which model; ``layers``,
            ``width`` and ``last_stride`` are not used).
        timm: the timm model of a ``kind: timm`` tower (``None`` otherwise).
    """

    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    heads: int = 8
    image_size: tuple[int, int] = (256, 128)
    output_dim: int = 768
    last_stride: int = 2
    pool: str = "attention"
    kind: str = "modified_resnet"
    timm: TimmTowerConfig | None = None

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Channels of the Modified ResNet's four stages (a timm tower's come from timm: ``visual.stage_channels``)."""
        self._require_modified_resnet("stage_channels")
        return tuple(self.width * 4 * 2**i for i in range(4))  # type: ignore[return-value]

    @property
    def feature_grid(self) -> tuple[int, int]:
        """(rows, cols) of the last stage map, i.e. the attention-pool grid."""
        self._require_modified_resnet("feature_grid")
        reduction = 32 if self.last_stride == 2 else 16
        return self.image_size[0] // reduction, self.image_size[1] // reduction

    def _require_modified_resnet(self, what: str) -> None:
        if self.kind != "modified_resnet":
            raise ConfigError(
                f"vision.{what} is known from the config only for the Modified ResNet; for a "
                f"{self.kind} tower ask the built module (model.visual.{what})"
            )

    def validate(self) -> None:
        if self.kind not in VISION_KINDS:
            raise ConfigError(f"vision.kind must be one of {', '.join(VISION_KINDS)}, got {self.kind!r}")
        pools = VISION_KINDS[self.kind]
        if self.pool not in pools:
            raise ConfigError(
                f"vision.pool must be {' or '.join(repr(p) for p in pools)} for a {self.kind} tower, got {self.pool!r}"
            )
        if self.output_dim < 1:
            raise ConfigError(f"vision.output_dim must be >= 1, got {self.output_dim!r}")
        h, w = self.image_size
        if self.kind == "timm":
            if self.timm is None:
                raise ConfigError("vision.kind is 'timm' but the vision.timm section is missing (model_name, ...)")
            self.timm.validate()
            if h <= 0 or w <= 0:
                raise ConfigError(f"vision.image_size must be positive, got {self.image_size!r}")
            return  # channel / stride constraints are the timm model's, checked when it is built
        if self.timm is not None:
            raise ConfigError("vision.timm is set but vision.kind is 'modified_resnet' (set kind: timm)")
        if len(self.layers) != 4 or any(int(n) < 1 for n in self.layers):
            raise ConfigError(f"vision.layers must be four positive integers, got {self.layers!r}")
        if self.width < 2 or self.width % 2:
            raise ConfigError(f"vision.width must be an even integer >= 2, got {self.width!r}")
        embed = self.stage_channels[-1]
        if self.heads < 1 or embed % self.heads:
            raise ConfigError(
                f"vision.heads={self.heads} must divide the last stage's {embed} channels"
            )
        if self.last_stride not in (1, 2):
            raise ConfigError(f"vision.last_stride must be 1 or 2, got {self.last_stride!r}")
        if h % 32 or w % 32 or h <= 0 or w <= 0:
            raise ConfigError(f"vision.image_size must be positive multiples of 32, got {self.image_size!r}")


@dataclass
class TextConfig:
    """BERT text encoder, built from a ``transformers.BertConfig`` (never downloaded).

    Attributes:
        vocab_size .. layer_norm_eps: the BertConfig fields (bert-base-uncased by default).
        pooling: ``"pooler"`` (tanh(dense(CLS)), the released PLIP model) or ``"mean"``
            (mean of the last hidden states over real tokens, the paper's alternative).
        max_length: tokens per caption including [CLS] and [SEP]; longer text is truncated.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    pooling: str = "pooler"
    max_length: int = 64

    def bert_kwargs(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self) if f.name not in ("pooling", "max_length")]
        return {name: getattr(self, name) for name in names}

    def validate(self) -> None:
        if self.pooling not in ("pooler", "mean"):
            raise ConfigError(f"text.pooling must be 'pooler' or 'mean', got {self.pooling!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"text.num_attention_heads={self.num_attention_heads} must divide "
                f"text.hidden_size={self.hidden_size}"
            )
        if not 3 <= self.max_length <= self.max_position_embeddings:
            raise ConfigError(
                f"text.max_length must be in [3, {self.max_position_embeddings}], got {self.max_length!r}"
            )


@dataclass
class PreprocessConfig:
    """Image preprocessing: PIL resize to ``image_size`` (H, W), to tensor, normalise."""

    image_size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = PLIP_MEAN
    std: tuple[float, float, float] = PLIP_STD
    interpolation: str = "bicubic"

    @property
    def mean_255(self) -> tuple[float, float, float]:
        """``mean`` on the 0-255 pixel scale (what fast-reid / OpenCV pipelines use)."""
        return tuple(round(m * 255.0, 4) for m in self.mean)  # type: ignore[return-value]

    @property
    def std_255(self) -> tuple[float, float, float]:
        """``std`` on the 0-255 pixel scale."""
        return tuple(round(s * 255.0, 4) for s in self.std)  # type: ignore[return-value]

    def validate(self) -> None:
        if self.interpolation not in ("bicubic", "bilinear", "nearest", "lanczos"):
            raise ConfigError(f"preprocess.interpolation {self.interpolation!r} is not supported")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("preprocess.mean and preprocess.std must be three numbers (std > 0)")


@dataclass
class PLIPConfig:
    """Configuration of a PLIP model: image encoder, text encoder, preprocessing."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model_type: str = "plip"

    @property
    def embed_dim(self) -> int:
        return self.vision.output_dim

    def validate(self) -> "PLIPConfig":
        self.vision.validate()
        self.text.validate()
        self.preprocess.validate()
        if self.vision.output_dim != self.text.hidden_size:
            raise ConfigError(
                f"vision.output_dim ({self.vision.output_dim}) must equal text.hidden_size "
                f"({self.text.hidden_size}): PLIP has no projection heads"
            )
        if tuple(self.preprocess.image_size) != tuple(self.vision.image_size):
            raise ConfigError(
                f"preprocess.image_size {tuple(self.preprocess.image_size)} differs from "
                f"vision.image_size {tuple(self.vision.image_size)}"
            )
        return self

    # -- construction (the variants are data: plip.models.architectures) ---------------
    @classmethod
    def rn50(cls) -> "PLIPConfig":
        """The released PLIP-RN50 architecture."""
        return cls.preset("rn50")

    @classmethod
    def tiny(cls, image_size: tuple[int, int] = (64, 32), dim: int = 32) -> "PLIPConfig":
        """The full architecture at test size (``build_config("tiny")``)."""
        return cls.preset("tiny", image_size, dim=dim)

    @classmethod
    def small(cls, image_size: tuple[int, int] = (128, 64), dim: int = 64) -> "PLIPConfig":
        """A ~4M-parameter model small enough to train on a CPU (``plip-tiny-synth``)."""
        return cls.preset("small", image_size, dim=dim)

    @classmethod
    def preset(cls, name: str, image_size: tuple[int, int] | None = None, dim: int | None = None) -> "PLIPConfig":
        """A registered architecture by name (see :data:`plip.models.ARCHITECTURES`)."""
        return build_config(name, image_size=tuple(image_size) if image_size else None, dim=dim)

    # -- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "PLIPConfig":
        """Build a config from its JSON form; ``source`` (the file) is named in every error.

        Every section and field must be present: a missing one is a :class:`ConfigError`
        naming it (a default would silently change the model). The exceptions are fields in
        :data:`FIELDS_ADDED` missing from a file written before they existed (its
        ``_plip_version``): those take their default, listed in one warning. ``model_type``
        may be omitted (it has one legal value).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        sections = {"vision": VisionConfig, "text": TextConfig, "preprocess": PreprocessConfig}
        written_by = _version_tuple(data.get("_plip_version"))
        defaulted: list[str] = []
        for name, section_cls in sections.items():
            if name not in data:
                raise ConfigError(f"{source}: missing section {name!r} (expected {', '.join(sections)})")
            if not isinstance(data[name], dict):
                continue  # build_dataclass names the type error
            for f in dataclasses.fields(section_cls):
                key = f"{name}.{f.name}"
                if f.name in data[name]:
                    continue
                since = FIELDS_ADDED.get(key)
                if since is None or written_by >= _version_tuple(since):
                    raise ConfigError(f"{source}: missing field {key!r}")
                defaulted.append(f"{key} (added in {since}) = {getattr(section_cls(), f.name)!r}")
        if defaulted:
            import warnings

            warnings.warn(
                f"{source} was written by plip {data.get('_plip_version', '< 0.1.0')}, before these fields existed; "
                f"using their defaults: {'; '.join(defaulted)}",
                stacklevel=2,
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in sections:
                kwargs[key] = build_dataclass(sections[key], value, source=source, prefix=f"{key}.")
            elif key == "model_type":
                if value != "plip":
                    raise ConfigError(f"{source}: model_type must be 'plip', got {value!r}")
                kwargs[key] = value
            elif key.startswith("_"):
                continue  # metadata such as _plip_version
            else:
                raise ConfigError(f"{source}: unknown key {key!r}")
        try:
            return cls(**kwargs).validate()
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def save(self, path: str | os.PathLike) -> None:
        from ..utils.io import atomic_write_text

        payload = {"_plip_version": _version(), **self.to_dict()}
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PLIPConfig":
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, source=str(path))


# -- named architectures: variants are data, built by one helper ----------------------------
@dataclass(frozen=True)
class Architecture:
    """A PLIP variant.

    Attributes:
        name: the name ``build_config`` takes.
        description: one line for listings.
        vision: :class:`VisionConfig` fields except ``image_size`` / ``output_dim``.
        text: :class:`TextConfig` fields except ``hidden_size`` and the derived sizes.
        image_size: default input (H, W).
        dim: joint embedding size (``vision.output_dim`` = ``text.hidden_size``).
        text_head_dim: BERT channels per attention head (heads = ``dim // text_head_dim``).
        text_ffn_ratio: BERT intermediate size / ``dim``.
        fixed_size: a full-size variant trained only at ``image_size`` (training builds it at
            that size and reports a different ``data.image_size``; small ones follow the data).
    """

    name: str
    description: str
    vision: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    image_size: tuple[int, int] = (256, 128)
    dim: int = 768
    text_head_dim: int = 64
    text_ffn_ratio: int = 4
    fixed_size: bool = False

    def config(self, image_size: tuple[int, int] | None = None, dim: int | None = None) -> PLIPConfig:
        size = tuple(image_size or self.image_size)
        dim = dim or self.dim
        fields_ = copy.deepcopy({**self.vision, "image_size": size, "output_dim": dim})
        if isinstance(fields_.get("timm"), dict):
            fields_["timm"] = TimmTowerConfig(**fields_["timm"])
        vision = VisionConfig(**fields_)
        text = TextConfig(**{
            **self.text, "hidden_size": dim, "num_attention_heads": max(1, dim // self.text_head_dim),
            "intermediate_size": self.text_ffn_ratio * dim,
        })
        return PLIPConfig(vision=vision, text=text, preprocess=PreprocessConfig(image_size=size)).validate()


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, description: str, **fields: Any) -> Architecture:
    """Add a variant to :data:`ARCHITECTURES` (a name may be registered once)."""
    if name in ARCHITECTURES:
        raise ConfigError(f"architecture {name!r} is already registered")
    ARCHITECTURES[name] = Architecture(name, description, **fields)
    return ARCHITECTURES[name]


def build_config(name: str, image_size: tuple[int, int] | None = None, dim: int | None = None) -> PLIPConfig:
    """The :class:`PLIPConfig` of a registered architecture, optionally at another input size."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r} ({', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name].config(image_size=image_size, dim=dim)


register_architecture(
    "rn50", "the released PLIP-RN50: Modified ResNet-50 (attention pool, 8 heads) + BERT-base",
    vision=dict(layers=(3, 4, 6, 3), width=64, heads=8), fixed_size=True,
)
register_architecture(
    # head counts follow the rules plip.hub.official.infer_config uses (8 pooling heads, one
    # BERT head per 64 channels), so a tiny official-format checkpoint loads without a config
    "tiny", "the full architecture at test size (width 8, one block per stage, 2-layer BERT)",
    vision=dict(layers=(1, 1, 1, 1), width=8, heads=8),
    text=dict(num_hidden_layers=2, max_position_embeddings=128),
    image_size=(64, 32), dim=32, text_ffn_ratio=2,
)
register_architecture(
    "small", "~4M parameters (width 16, 2-layer BERT, mean pooling): trains on a CPU (plip-tiny-synth)",
    vision=dict(layers=(1, 1, 1, 1), width=16, heads=8),
    text=dict(num_hidden_layers=2, max_position_embeddings=128, pooling="mean"),
    image_size=(128, 64), dim=64, text_head_dim=32,
)

register_architecture(
    # The paper's strongest tower (CUHK-PEDES fine-tuned R@1 75.36). Its appendix does not give
    # the window or head: window 8 (timm's ImageNet Swin uses 7) tiles the 64x32 patch grid of a
    # 256x128 person exactly at every stage; max-pool + linear is the paper's default image head.
    "swin-b", "Swin-B (timm swin_base_patch4_window7_224, window 8, max-pool + linear) + BERT-base",
    vision=dict(kind="timm", pool="max", timm=dict(model_name="swin_base_patch4_window7_224",
                                                   kwargs={"window_size": 8})),
    fixed_size=True,
)
register_architecture(
    "swin-micro", "a ~0.3M-parameter timm Swin (4 one-block stages, width 16) + 2-layer BERT: the timm tower at test size",
    vision=dict(kind="timm", pool="avg", timm=dict(
        model_name="swin_tiny_patch4_window7_224",
        kwargs={"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 4},
    )),
    text=dict(num_hidden_layers=2, max_position_embeddings=128),
    image_size=(64, 32), dim=32, text_ffn_ratio=2,
)


#: Config fields added after the first format (``"section.field"`` -> the plip version that
#: first wrote them). A file written by an older version may lack them; they then take their
#: default with a warning. Every other missing field is an error.
FIELDS_ADDED: dict[str, str] = {"vision.pool": "0.2.0", "vision.kind": "0.3.0", "vision.timm": "0.3.0"}


def _version_tuple(version: Any) -> tuple[int, ...]:
    """``"0.1.0"`` -> ``(0, 1, 0)`` (numeric prefix: ``"0.2.0.dev1"`` -> ``(0, 2, 0)``);
    absent or unparsable -> ``(0,)``, older than every release."""
    import re

    match = re.match(r"\d+(?:\.\d+)*", version.strip()) if isinstance(version, str) else None
    return tuple(int(p) for p in match.group(0).split(".")) if match else (0,)


def _version() -> str:
    from ..version import __version__

    return __version__
