"""PLIP's pre-training heads and total loss (paper, Sec. 3; the code was never released).

* TIC (text-guided image colorisation): :class:`ColorizationDecoder` turns the four stage
  maps of the *grayscale* image into the colour image, its channels re-weighted by
  :class:`TextConditionedSE` blocks that see the caption's global text embedding.
* IAP (image-guided attribute prediction): :class:`AttributePredictionHead` predicts the
  masked attribute words of a caption from its token states fused with the image embedding.
* IVLC (identity-based vision-language contrast): CMPM with identity labels
  (:func:`plip.training.losses.cmpm_loss`).

:class:`PretrainHeads` bundles the two heads; :func:`pretraining_losses` combines the three
losses as ``L = w_ivlc·L_IVLC + w_tic·L_TIC + w_iap·L_IAP`` (1, 0.02, 0.1 in the paper);
:class:`PLIPForPretraining` runs a PLIP model and the heads in one ``forward`` so the pair
can be wrapped by ``DistributedDataParallel``. The heads are training-only: they are saved
in training checkpoints, never in the exported encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .losses import CMPMVariant, ColorizationKind, cmpm_loss, colorization_loss, masked_token_loss

__all__ = [
    "TextConditionedSE",
    "ColorizationDecoder",
    "AttributePredictionHead",
    "PretrainHeads",
    "check_tic_stages",
    "PretrainLossWeights",
    "pretraining_losses",
    "PLIPForPretraining",
    "to_grayscale",
]


class TextConditionedSE(nn.Module):
    """Squeeze-excitation whose gate also sees a text embedding.

    ``s = sigmoid(W2 · relu(W1 · [avgpool(x); t]))``, output ``x * s`` per channel, with
    ``W1: (C + T) → C`` and ``W2: C → C`` (no bottleneck, as the paper describes it).

    ``init``: ``torch`` (``nn.Linear``'s default) or ``kaiming`` (the official repository's
    ``weights_init_kaiming`` for linear layers: Kaiming-normal weights, ``mode="fan_out"``,
    zero bias; the repository's only initialisation helper, since its pre-training code,
    SE block included, was never released).
    """

    def __init__(self, channels: int, text_dim: int, init: str = "torch") -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels + text_dim, channels)
        self.fc2 = nn.Linear(channels, channels)
        if init == "kaiming":
            for fc in (self.fc1, self.fc2):
                nn.init.kaiming_normal_(fc.weight, a=0, mode="fan_out")
                nn.init.zeros_(fc.bias)
        elif init != "torch":
            raise ConfigError(f"SE init must be 'torch' or 'kaiming', got {init!r}")

    def forward(self, x: Tensor, text_emb: Tensor) -> Tensor:
        pooled = x.mean(dim=(2, 3))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(torch.cat([pooled, text_emb.to(pooled.dtype)], dim=1)))))
        return x * gate[:, :, None, None]


class ColorizationDecoder(nn.Module):
    """TIC decoder: stage maps of the grayscale image + text embedding → colour image.

    1. Each of the four stage maps (strides 4, 8, 16, 32; channels ``in_channels``) goes
       through a 1x1 conv to ``fpn_channels`` (256).
    2. Top-down FPN: from the deepest map, bilinearly upsample to the next map's size
       (x2 for the standard strides) and add.
    3. Upsample all four merged maps to the stride-4 size and concatenate
       (``4 * fpn_channels`` = 1024 channels).
    4. ``TextConditionedSE(1024)`` → ``ConvTranspose2d(1024→256, k3, s2, p1, op1)`` →
       BatchNorm + ReLU → ``TextConditionedSE(256)`` → ``ConvTranspose2d(256→3, same)``;
       each transposed conv doubles the size, so the output has the input image's size.

    The paper's figure shows no normalisation or activation between the two blocks. We put
    BatchNorm + ReLU after the first transposed conv (``hidden_norm_act=True``): without it
    the two blocks compose to a linear map up to the SE gates. The output is linear (it
    predicts normalised pixel values, which are signed).

    Args:
        in_channels: channels of the four stage maps, ``config.vision.stage_channels``
            (256, 512, 1024, 2048 for ResNet-50).
        text_dim: size of the text embedding conditioning the SE blocks (768).
        fpn_channels: width of the FPN (256).
        out_channels: 3 (RGB).
        hidden_norm_act: BatchNorm + ReLU between the two blocks.
        se_init: initialisation of the SE blocks (see :class:`TextConditionedSE`).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        text_dim: int,
        fpn_channels: int = 256,
        out_channels: int = 3,
        hidden_norm_act: bool = True,
        se_init: str = "torch",
    ) -> None:
        super().__init__()
        in_channels = tuple(int(c) for c in in_channels)
        if len(in_channels) != 4:
            raise ValueError(f"ColorizationDecoder needs 4 stage channel counts, got {in_channels}")
        self.in_channels = in_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, fpn_channels, kernel_size=1) for c in in_channels)
        merged = 4 * fpn_channels
        self.se1 = TextConditionedSE(merged, text_dim, init=se_init)
        self.up1 = nn.ConvTranspose2d(merged, fpn_channels, 3, stride=2, padding=1, output_padding=1)
        self.norm_act = (
            nn.Sequential(nn.BatchNorm2d(fpn_channels), nn.ReLU(inplace=True)) if hidden_norm_act else nn.Identity()
        )
        self.se2 = TextConditionedSE(fpn_channels, text_dim, init=se_init)
        self.up2 = nn.ConvTranspose2d(fpn_channels, out_channels, 3, stride=2, padding=1, output_padding=1)

    def forward(self, stages: Sequence[Tensor], text_emb: Tensor) -> Tensor:
        """``stages``: the four maps (B, C_i, H_i, W_i), shallowest first; ``text_emb``: (B, T).

        Returns (B, out_channels, 4·H_1, 4·W_1): the input image size for a stride-4 first stage.
        """
        if len(stages) != 4:
            raise ValueError(f"expected 4 stage maps, got {len(stages)}")
        for index, (stage, channels) in enumerate(zip(stages, self.in_channels)):
            if stage.dim() != 4 or stage.shape[1] != channels:
                raise ValueError(
                    f"stage {index + 1} must be (B, {channels}, H, W), got {tuple(stage.shape)}"
                )
        laterals = [conv(stage) for conv, stage in zip(self.lateral, stages)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            merged.insert(0, lateral + _resize(merged[0], lateral.shape[-2:]))
        size = merged[0].shape[-2:]
        x = torch.cat([merged[0]] + [_resize(m, size) for m in merged[1:]], dim=1)
        x = self.norm_act(self.up1(self.se1(x, text_emb)))
        return self.up2(self.se2(x, text_emb))


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class AttributePredictionHead(nn.Module):
    """IAP head: masked-caption token states + image embedding → vocabulary logits.

    ``h_l + P(v)`` for every token ``l`` (``P`` is the identity when the image embedding
    already has the text's width, as in PLIP; a linear map otherwise), then one
    transformer encoder block and ``Linear(hidden → vocab_size)``.

    The block is ``torch.nn.TransformerEncoderLayer`` configured like a BERT layer
    (post-LayerNorm, GELU, BERT's width / heads / feed-forward size / dropout / LayerNorm
    eps), which is architecturally a ``transformers`` ``BertLayer`` but with a stable API;
    padded positions are excluded from attention via ``attention_mask``.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        vocab_size: int,
        image_dim: int | None = None,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        image_dim = hidden_size if image_dim is None else image_dim
        self.image_proj: nn.Module = nn.Identity() if image_dim == hidden_size else nn.Linear(image_dim, hidden_size)
        self.block = nn.TransformerEncoderLayer(
            d_model=hidden_size,
            nhead=num_heads,
            dim_feedforward=intermediate_size,
            dropout=dropout,
            activation="gelu",
            layer_norm_eps=layer_norm_eps,
            batch_first=True,
            norm_first=False,
        )
        self.classifier = nn.Linear(hidden_size, vocab_size)

    @classmethod
    def from_text_config(cls, text_config: Any, image_dim: int | None = None) -> "AttributePredictionHead":
        """Build from a BERT-like config (``plip`` ``TextConfig`` or ``transformers.BertConfig``)."""
        return cls(
            hidden_size=text_config.hidden_size,
            num_heads=text_config.num_attention_heads,
            intermediate_size=text_config.intermediate_size,
            vocab_size=text_config.vocab_size,
            image_dim=image_dim,
            dropout=text_config.hidden_dropout_prob,
            layer_norm_eps=text_config.layer_norm_eps,
        )

    def forward(
        self,
        hidden_states: Tensor,
        image_emb: Tensor,
        attention_mask: Tensor | None = None,
        target_mask: Tensor | None = None,
    ) -> Tensor:
        """Vocabulary logits.

        Args:
            hidden_states: (B, L, H) last hidden states of the masked caption.
            image_emb: (B, D) global image embedding.
            attention_mask: (B, L), 1 for real tokens, 0 for padding.
            target_mask: (B, L) bool; when given, only the K masked positions are projected
                on the vocabulary (saves a (B, L, V) tensor).

        Returns:
            (B, L, V) logits, or (K, V) when ``target_mask`` is given (row order of
            ``hidden_states[target_mask]``).
        """
        x = hidden_states + self.image_proj(image_emb).to(hidden_states.dtype)[:, None, :]
        padding = None if attention_mask is None else attention_mask == 0
        x = self.block(x, src_key_padding_mask=padding)
        if target_mask is not None:
            x = x[target_mask.bool()]
        return self.classifier(x)


@dataclass
class PretrainLossWeights:
    """Task weights of ``L = ivlc·L_IVLC + tic·L_TIC + iap·L_IAP`` (paper: 1, 0.02, 0.1).

    A weight of 0 switches the task off: its loss is not computed.
    """

    ivlc: float = 1.0
    tic: float = 0.02
    iap: float = 0.1

    def __post_init__(self) -> None:
        for name in ("ivlc", "tic", "iap"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"loss weight {name} must be a non-negative number, got {value!r}")


class PretrainHeads(nn.Module):
    """The training-only heads of PLIP pre-training: TIC decoder and IAP head (either may be None)."""

    def __init__(
        self,
        decoder: ColorizationDecoder | None = None,
        attribute_head: AttributePredictionHead | None = None,
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.attribute_head = attribute_head

    @classmethod
    def from_config(
        cls,
        config: Any,
        tic: bool = True,
        iap: bool = True,
        fpn_channels: int = 256,
        hidden_norm_act: bool = True,
        se_init: str = "torch",
        stage_channels: Sequence[int] | None = None,
    ) -> "PretrainHeads":
        """Heads sized for a :class:`plip.models.PLIPConfig` (the TIC decoder reads
        ``stage_channels``, default the Modified ResNet's ``vision.stage_channels``; the IAP head
        ``vision.output_dim`` and the ``text`` BERT fields); ``tic``/``iap`` False leaves that head out."""
        decoder = (
            ColorizationDecoder(
                config.vision.stage_channels if stage_channels is None else stage_channels,
                text_dim=config.text.hidden_size,
                fpn_channels=fpn_channels,
                hidden_norm_act=hidden_norm_act,
                se_init=se_init,
            )
            if tic
            else None
        )
        head = AttributePredictionHead.from_text_config(config.text, image_dim=config.vision.output_dim) if iap else None
        return cls(decoder, head)

    @classmethod
    def for_model(cls, model: nn.Module, tic: bool = True, **kwargs: Any) -> "PretrainHeads":
        """Heads sized for a built PLIP model: the TIC decoder reads its image tower's stage maps
        (``model.visual.stage_channels`` / ``reductions``: any tower kind); ``kwargs`` as
        :meth:`from_config`.

        Raises:
            ConfigError: TIC is on but the tower's maps do not fit the decoder (four maps, the
                first at stride 4: the two transposed convolutions upsample x4 to the input size).
        """
        if tic:
            check_tic_stages(model.visual, model.config.vision.image_size)
        return cls.from_config(model.config, tic=tic, stage_channels=model.visual.stage_channels, **kwargs)


def check_tic_stages(visual: nn.Module, image_size: Sequence[int]) -> None:
    """The TIC decoder needs four stage maps, the first at stride 4, and an input size they divide."""
    channels, reductions = tuple(visual.stage_channels), tuple(visual.reductions)
    tower = getattr(getattr(visual, "config", None), "timm", None)
    name = tower.model_name if tower is not None else type(visual).__name__
    fix = "set model.tic_weight: 0, or choose a tower with a stride-4 first stage (ResNet, Swin, ConvNeXt)"
    if len(channels) != 4:
        raise ConfigError(
            f"TIC needs 4 stage maps of the image tower; {name} exposes {len(channels)} "
            f"(vision.timm.out_indices picks four): {fix}"
        )
    if reductions[0] != 4 or any(r % 4 for r in reductions) or list(reductions) != sorted(reductions):
        raise ConfigError(
            f"TIC decodes the colour image from stage maps at increasing strides starting at 4; "
            f"{name} gives strides {list(reductions)}: {fix}"
        )
    h, w = image_size
    if h % reductions[-1] or w % reductions[-1]:
        raise ConfigError(f"TIC: the input size {h}x{w} is not divisible by {name}'s deepest stride {reductions[-1]}")


def pretraining_losses(
    heads: PretrainHeads,
    *,
    image_emb: Tensor,
    text_emb: Tensor,
    labels: Tensor,
    gray_stages: Sequence[Tensor] | None = None,
    color_images: Tensor | None = None,
    masked_hidden_states: Tensor | None = None,
    attention_mask: Tensor | None = None,
    target_ids: Tensor | None = None,
    target_mask: Tensor | None = None,
    weights: PretrainLossWeights | None = None,
    cmpm_variant: CMPMVariant = "official",
    colorization_kind: ColorizationKind = "mse",
    gather: Callable[[Tensor], Tensor] | None = None,
    cmpm_temperature: float = 1.0,
) -> dict[str, Tensor]:
    """The PLIP pre-training objective from the model's outputs.

    Args:
        heads: the TIC decoder / IAP head (a head may be None if its weight is 0).
        image_emb: (B, D) global embeddings of the colour images.
        text_emb: (B, H) global embeddings of the complete captions (also conditions TIC).
        labels: (B,) identity labels (IVLC positives = same identity).
        gray_stages: the four stage maps of the grayscale images (TIC).
        color_images: (B, 3, H, W) colour images the decoder must reconstruct (TIC), in the
            same (normalised) space as the model input.
        masked_hidden_states: (B, L, H) text-encoder hidden states of the masked captions (IAP).
        attention_mask: (B, L) of the captions (IAP).
        target_ids: (B, L) unmasked token ids (IAP).
        target_mask: (B, L) bool, True at masked positions (IAP).
        weights: task weights; a task with weight 0 is skipped.
        cmpm_variant: see :func:`plip.training.losses.cmpm_loss`.
        cmpm_temperature: logit temperature of the ``paper`` (cosine) variant.
        colorization_kind: see :func:`plip.training.losses.colorization_loss`.
        gather: all-gathers a tensor across ranks (with gradients), so IVLC sees the whole
            global batch under DDP (e.g. the engine's ``ctx.gather``); TIC and IAP are
            per-sample and stay local.

    Returns:
        ``{"loss": total, "ivlc": ..., "tic": ..., "iap": ...}`` with only the enabled
        tasks' (unweighted) losses.

    Raises:
        ConfigError: a task has a positive weight but its head or inputs are missing.
    """
    weights = weights if weights is not None else PretrainLossWeights()
    losses: dict[str, Tensor] = {}
    if weights.ivlc > 0:
        if gather is not None:
            losses["ivlc"] = cmpm_loss(gather(image_emb), gather(text_emb), gather(labels),
                                       variant=cmpm_variant, temperature=cmpm_temperature)
        else:
            losses["ivlc"] = cmpm_loss(image_emb, text_emb, labels, variant=cmpm_variant, temperature=cmpm_temperature)
    if weights.tic > 0:
        _require("tic", heads.decoder, "heads.decoder", gray_stages=gray_stages, color_images=color_images)
        colorized = heads.decoder(gray_stages, text_emb)
        losses["tic"] = colorization_loss(colorized, color_images, kind=colorization_kind)
    if weights.iap > 0:
        _require(
            "iap",
            heads.attribute_head,
            "heads.attribute_head",
            masked_hidden_states=masked_hidden_states,
            target_ids=target_ids,
            target_mask=target_mask,
        )
        logits = heads.attribute_head(masked_hidden_states, image_emb, attention_mask, target_mask=target_mask)
        losses["iap"] = masked_token_loss(logits, target_ids, target_mask)
    if not losses:
        raise ConfigError("every pre-training loss weight is 0: nothing to train")
    total = sum(getattr(weights, name) * value for name, value in losses.items())
    return {"loss": total, **losses}


def _require(task: str, head: nn.Module | None, head_name: str, **inputs: Any) -> None:
    if head is None:
        raise ConfigError(f"loss weight {task} > 0 but {head_name} is None (build it or set the weight to 0)")
    missing = [name for name, value in inputs.items() if value is None]
    if missing:
        raise ConfigError(f"loss weight {task} > 0 but no {', '.join(missing)} given")


def to_grayscale(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Grayscale copy of a batch of normalised RGB images, normalised the same way.

    Undo ``(x - mean) / std``, take the ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, as
    ``torchvision``'s ``rgb_to_grayscale``), repeat it on 3 channels and normalise again,
    so the image encoder sees a grey picture through its usual preprocessing.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    luma = torch.as_tensor((0.299, 0.587, 0.114), dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    gray = ((images * std_t + mean_t) * luma).sum(dim=1, keepdim=True)
    return (gray.expand(-1, 3, -1, -1) - mean_t) / std_t


class PLIPForPretraining(nn.Module):
    """A PLIP model plus its pre-training heads, computing every loss in one ``forward``.

    DistributedDataParallel only synchronises gradients of work done inside the wrapped
    module's ``forward``, so wrap *this* module (not the encoder alone). The encoder is
    used through its public interface: ``model.visual(images)`` (the embedding),
    ``model.visual.forward_intermediates(images, intermediates_only=True)`` (the stage maps) and ``model.text(input_ids, attention_mask)`` (``.hidden_states``,
    ``.embedding``).
    """

    def __init__(
        self,
        model: nn.Module,
        heads: PretrainHeads,
        weights: PretrainLossWeights | None = None,
        cmpm_variant: CMPMVariant = "official",
        colorization_kind: ColorizationKind = "mse",
        cmpm_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.heads = heads
        self.weights = weights if weights is not None else PretrainLossWeights()
        self.cmpm_variant = cmpm_variant
        self.cmpm_temperature = cmpm_temperature
        self.colorization_kind = colorization_kind

    def forward(
        self,
        images: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor,
        gray_images: Tensor | None = None,
        masked_input_ids: Tensor | None = None,
        target_mask: Tensor | None = None,
        gather: Callable[[Tensor], Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Losses of one batch; see :func:`pretraining_losses` for the returned dict.

        ``gray_images`` (TIC) and ``masked_input_ids`` / ``target_mask`` (IAP) are needed only
        when that task's weight is positive.
        """
        w = self.weights
        image_emb = self.model.visual(images)
        text_emb = self.model.text(input_ids, attention_mask).embedding
        gray_stages = None
        if w.tic > 0 and gray_images is not None:
            gray_stages = self.model.visual.forward_intermediates(gray_images, intermediates_only=True)
        masked_hidden = None
        if w.iap > 0 and masked_input_ids is not None:
            masked_hidden = self.model.text(masked_input_ids, attention_mask).hidden_states
        return pretraining_losses(
            self.heads,
            image_emb=image_emb,
            text_emb=text_emb,
            labels=labels,
            gray_stages=gray_stages,
            color_images=images if w.tic > 0 else None,
            masked_hidden_states=masked_hidden,
            attention_mask=attention_mask,
            target_ids=input_ids,
            target_mask=target_mask,
            weights=w,
            cmpm_variant=self.cmpm_variant,
            colorization_kind=self.colorization_kind,
            gather=gather,
            cmpm_temperature=self.cmpm_temperature,
        )
