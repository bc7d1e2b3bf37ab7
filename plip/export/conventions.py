"""Input conventions of an exported image graph: normalisation, value range, channel order.

plip's own image tensor is RGB, pixel values in [0, 1], normalised with the SYNTH-PEDES
mean / std (:class:`plip.models.config.PreprocessConfig`). A consumer that prepares crops
its own way (boxmot: ImageNet mean / std) declares its convention and the export folds the
conversion into the graph: ``consumer tensor -> plip tensor`` is a channel permutation and
one per-channel affine map, exact up to float32 rounding.

Conventions (the consumer's tensor ``v`` from pixels ``p`` in ``[0, R]``, ``R`` = 1 or 255):

* ``norm="plip"`` / ``"imagenet"``: ``v = (p / R - mean) / std``;
* ``norm="none"``: ``v = p`` (the graph divides by ``R`` itself).

With a normalisation the tensor does not depend on ``R`` (the mean and std are applied to
pixels scaled to [0, 1]); the range is then recorded in the metadata only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PlipError

__all__ = ["InputConvention", "NORMS", "RANGES", "CHANNELS", "affine_to_model"]

#: Mean / std of each named normalisation; ``"plip"`` is the model's own (filled from its config).
NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]] | None] = {
    "plip": None,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,
}
RANGES: dict[str, float] = {"0-1": 1.0, "0-255": 255.0}
CHANNELS = ("rgb", "bgr")


@dataclass(frozen=True)
class InputConvention:
    """What the consumer feeds the image graph.

    Attributes:
        norm: ``"plip"`` (the model's mean / std), ``"imagenet"`` or ``"none"``.
        range: ``"0-1"`` or ``"0-255"``: the scale of the pixels before normalisation.
        channels: ``"rgb"`` or ``"bgr"``.
    """

    norm: str = "plip"
    range: str = "0-1"
    channels: str = "rgb"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise PlipError(f"input_norm must be one of {sorted(NORMS)}, got {self.norm!r}")
        if self.range not in RANGES:
            raise PlipError(f"input_range must be one of {sorted(RANGES)}, got {self.range!r}")
        if self.channels not in CHANNELS:
            raise PlipError(f"channels must be one of {list(CHANNELS)}, got {self.channels!r}")

    @property
    def is_plain(self) -> bool:
        """True when the consumer's tensor already is the model's (no conversion in the graph)."""
        return self.norm == "plip" and self.channels == "rgb"

    def mean_std(self, model_mean, model_std) -> tuple[list[float], list[float]] | None:
        """The consumer's mean / std (on [0, 1] pixels), or ``None`` for ``norm="none"``."""
        if self.norm == "none":
            return None
        if self.norm == "plip":
            return [float(m) for m in model_mean], [float(s) for s in model_std]
        mean, std = NORMS[self.norm]
        return list(mean), list(std)


def affine_to_model(
    convention: InputConvention, model_mean, model_std
) -> tuple[list[float], list[float]]:
    """Per-channel ``(scale, shift)`` with ``model_tensor = scale * v + shift``, where ``v`` is
    the consumer's tensor after reordering its channels to RGB."""
    model_mean = [float(m) for m in model_mean]
    model_std = [float(s) for s in model_std]
    stats = convention.mean_std(model_mean, model_std)
    scale, shift = [], []
    for c in range(3):
        if stats is None:  # v = p, pixels in [0, R]: x01 = v / R
            a, b = 1.0 / RANGES[convention.range], 0.0
        else:  # x01 = v * std_c + mean_c
            a, b = stats[1][c], stats[0][c]
        # model tensor = (x01 - mean) / std = (a * v + b - mean) / std
        scale.append(a / model_std[c])
        shift.append((b - model_mean[c]) / model_std[c])
    return scale, shift


#: What ``--for boxmot`` picks, read from boxmot's sources (``boxmot/reid/core/crops.py``,
#: ``prepare_crop_batch``): crops are read BGR by OpenCV, resized with ``cv2.INTER_LINEAR``,
#: converted BGR -> RGB, divided by 255 and normalised with the ImageNet mean / std before the
#: graph sees them. So the graph's input is RGB, [0, 1]-scaled, ImageNet-normalised.
BOXMOT = InputConvention(norm="imagenet", range="0-1", channels="rgb")
