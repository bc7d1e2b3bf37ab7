"""Losses of PLIP pre-training and CMPM/C fine-tuning.

* :func:`cmpm_loss` -- cross-modal projection matching (Zhang & Lu, "Deep Cross-Modal
  Projection Learning for Image-Text Matching", ECCV 2018) with identity labels. PLIP calls
  it IVLC during pre-training and uses it again for fine-tuning.
* :func:`cmpc_loss` / :class:`CMPCHead` -- cross-modal projection classification, the
  identity classifier of the same paper.
* :func:`masked_token_loss` -- cross-entropy over the masked caption positions (IAP).
* :func:`colorization_loss` -- the reconstruction loss of text-guided colorisation (TIC).

Every loss is computed in float32 whatever the input dtype, so they are safe under autocast.
Embeddings are the *un-normalised* model outputs: the official code relies on their norm.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import DataError

__all__ = [
    "cmpm_loss",
    "cmpc_logits",
    "cmpc_loss",
    "CMPCHead",
    "masked_token_loss",
    "colorization_loss",
]

CMPMVariant = Literal["official", "paper"]


def _check_pairs(image_emb: Tensor, text_emb: Tensor, labels: Tensor, text_labels: Tensor) -> None:
    if image_emb.dim() != 2 or text_emb.dim() != 2:
        raise ValueError(
            f"embeddings must be 2-D (N, D); got image {tuple(image_emb.shape)}, text {tuple(text_emb.shape)}"
        )
    if image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"image dim {image_emb.shape[1]} != text dim {text_emb.shape[1]}")
    if labels.shape != (image_emb.shape[0],):
        raise ValueError(f"labels must have shape ({image_emb.shape[0]},), got {tuple(labels.shape)}")
    if text_labels.shape != (text_emb.shape[0],):
        raise ValueError(f"text_labels must have shape ({text_emb.shape[0]},), got {tuple(text_labels.shape)}")


def _matching_kl(logits: Tensor, positives: Tensor, normalisation: str, eps: float) -> Tensor:
    """mean_i sum_j p_ij (log p_ij - log(q_ij + eps)) with p = softmax(logits), q from positives."""
    mask = positives.to(logits.dtype)
    if normalisation == "l2":  # official PyTorch CMPM code: labels_mask / labels_mask.norm(dim=1)
        norm = mask.norm(dim=1, keepdim=True)
    else:  # the paper's formula and the original TensorFlow code: q_ij = y_ij / sum_k y_ik
        norm = mask.sum(dim=1, keepdim=True)
    # A row without any positive (only possible when the two sides have different label
    # sets) gets q = 0 instead of 0/0 = NaN.
    target = mask / norm.clamp_min(1.0)
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * (log_p - torch.log(target + eps))).sum(dim=1).mean()


def cmpm_loss(
    image_emb: Tensor,
    text_emb: Tensor,
    labels: Tensor,
    text_labels: Tensor | None = None,
    *,
    eps: float = 1e-8,
    variant: CMPMVariant = "official",
    temperature: float = 1.0,
) -> Tensor:
    """Cross-modal projection matching loss with identity labels (image→text + text→image).

    Positives are all pairs of the same identity, not only the matched pair, so a batch
    holding several images of one person has several positives per row.

    ``variant="official"`` (default) is what the released PLIP fine-tuning code and the
    common PyTorch re-implementations of CMPM compute, and what the published numbers used:

    * logits ``image_emb @ normalize(text_emb).T`` (scalar projection of each un-normalised
      image embedding on each normalised text embedding) and symmetrically for text→image;
    * true distribution ``q_ij = y_ij / ||y_i||_2`` (label mask divided by the L2 norm of its
      row, i.e. ``1/sqrt(n_i)`` for each of the ``n_i`` positives: *not* a distribution when
      ``n_i > 1``; kept because the released models were trained with it);
    * ``L = mean_i sum_j p_ij (log p_ij - log(q_ij + eps))``.

    ``variant="paper"`` follows the formula in the PLIP paper (and the original TensorFlow
    CMPM code's normalisation): logits are cosine similarities, ``q_ij = y_ij / sum_k y_ik``.
    Cosine logits lie in [-1, 1], so with ``temperature=1`` the softmax is flat and the loss
    learns slowly; ``temperature`` divides the logits of either variant (1.0 = no change).

    Args:
        image_emb: (N, D) image embeddings (un-normalised).
        text_emb: (M, D) text embeddings (un-normalised).
        labels: (N,) identity of each image.
        text_labels: (M,) identity of each text; defaults to ``labels`` (then M must equal
            N). Give it when the two sides differ, e.g. local images against texts gathered
            from every rank. The text→image term then uses the transposed label mask.
        eps: added to q inside the log (1e-8 as in the official code).
        variant: ``"official"`` or ``"paper"``, see above.
        temperature: divides the logits.

    Returns:
        Scalar loss ``L_i2t + L_t2i`` (float32).
    """
    if variant not in ("official", "paper"):
        raise ValueError(f"variant must be 'official' or 'paper', got {variant!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if text_labels is None:
        text_labels = labels
    _check_pairs(image_emb, text_emb, labels, text_labels)
    image_emb = image_emb.float()
    text_emb = text_emb.float()
    image_unit = F.normalize(image_emb, dim=1)
    text_unit = F.normalize(text_emb, dim=1)
    if variant == "official":
        logits_i2t = image_emb @ text_unit.t()
        logits_t2i = text_emb @ image_unit.t()
        normalisation = "l2"
    else:
        logits_i2t = image_unit @ text_unit.t()
        logits_t2i = logits_i2t.t()
        normalisation = "l1"
    if temperature != 1.0:
        logits_i2t = logits_i2t / temperature
        logits_t2i = logits_t2i / temperature
    positives = labels.reshape(-1, 1) == text_labels.reshape(1, -1)  # (N, M)
    return _matching_kl(logits_i2t, positives, normalisation, eps) + _matching_kl(
        logits_t2i, positives.t(), normalisation, eps
    )


def cmpc_logits(image_emb: Tensor, text_emb: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Class logits of the cross-modal projections, as the official CMPC code.

    Each image embedding is projected on its own caption's normalised text embedding,
    ``(x_i · t̂_i) t̂_i``, and each text embedding on its image's normalised embedding; both
    projections are classified by the column-normalised weight matrix ``W / ||W||_col``.

    Args:
        image_emb: (N, D) image embeddings of N image-caption pairs.
        text_emb: (N, D) text embeddings of the same pairs.
        weight: (D, C) class weights (one column per identity).

    Returns:
        ``(image_logits, text_logits)``, each (N, C), float32.
    """
    if image_emb.shape != text_emb.shape or image_emb.dim() != 2:
        raise ValueError(
            f"image and text embeddings must both be (N, D) pairs; got {tuple(image_emb.shape)} "
            f"and {tuple(text_emb.shape)}"
        )
    if weight.dim() != 2 or weight.shape[0] != image_emb.shape[1]:
        raise ValueError(f"weight must be (D={image_emb.shape[1]}, C); got {tuple(weight.shape)}")
    image_emb = image_emb.float()
    text_emb = text_emb.float()
    weight_unit = F.normalize(weight.float(), dim=0)
    image_unit = F.normalize(image_emb, dim=1)
    text_unit = F.normalize(text_emb, dim=1)
    image_proj_text = (image_emb * text_unit).sum(dim=1, keepdim=True) * text_unit
    text_proj_image = (text_emb * image_unit).sum(dim=1, keepdim=True) * image_unit
    return image_proj_text @ weight_unit, text_proj_image @ weight_unit


def _check_class_labels(labels: Tensor, num_classes: int) -> None:
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(
            f"identity label {bad} is outside [0, {num_classes}): the CMPC classifier needs "
            f"0-based contiguous identity ids below num_classes={num_classes}"
        )


def cmpc_loss(image_emb: Tensor, text_emb: Tensor, labels: Tensor, weight: Tensor) -> Tensor:
    """Cross-modal projection classification loss: CE(image→text) + CE(text→image).

    See :func:`cmpc_logits`; each cross-entropy is averaged over the batch (as the official
    code's ``nn.CrossEntropyLoss(reduction="mean")``), the two are summed.

    Raises:
        DataError: a label is negative or not below the number of classes (C = weight's
            second dimension); official annotation ids are 1-based and must be shifted.
    """
    _check_class_labels(labels, weight.shape[1])
    image_logits, text_logits = cmpc_logits(image_emb, text_emb, weight)
    labels = labels.long()
    return F.cross_entropy(image_logits, labels) + F.cross_entropy(text_logits, labels)


class CMPCHead(nn.Module):
    """Holds the CMPC class-weight matrix (D x C, Xavier-uniform init as the official code).

    The official fine-tuning trains this matrix at 10x the encoders' learning rate; give
    ``head.parameters()`` its own optimizer group.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"num_classes and dim must be positive, got {num_classes}, {dim}")
        self.num_classes = num_classes
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(dim, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight, gain=1.0)

    def logits(self, image_emb: Tensor, text_emb: Tensor) -> tuple[Tensor, Tensor]:
        """``(image_logits, text_logits)``; argmax gives the predicted identity (accuracy)."""
        return cmpc_logits(image_emb, text_emb, self.weight)

    def forward(self, image_emb: Tensor, text_emb: Tensor, labels: Tensor) -> Tensor:
        return cmpc_loss(image_emb, text_emb, labels, self.weight)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_classes={self.num_classes}"


def masked_token_loss(logits: Tensor, target_ids: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy averaged over the masked token positions only.

    Args:
        logits: (B, L, V) vocabulary logits for every position, or (K, V) logits already
            gathered at the K masked positions (``logits_full[mask]``, which saves computing
            the vocabulary projection everywhere).
        target_ids: (B, L) the original (unmasked) token ids.
        mask: (B, L) bool, True where a token was masked and must be predicted.

    Returns:
        Mean negative log-likelihood of the original tokens over the masked positions
        (float32). With no masked position it is 0, still attached to the graph so every
        parameter receives a (zero) gradient, which DDP requires.
    """
    if mask.shape != target_ids.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and target_ids {tuple(target_ids.shape)} differ in shape")
    mask = mask.bool()
    if logits.dim() == 3:
        if logits.shape[:2] != mask.shape:
            raise ValueError(f"logits {tuple(logits.shape)} do not match mask {tuple(mask.shape)}")
        logits = logits[mask]
    elif logits.dim() != 2 or logits.shape[0] != int(mask.sum()):
        raise ValueError(
            f"logits must be (B, L, V) or (K, V) with K = {int(mask.sum())} masked positions; "
            f"got {tuple(logits.shape)}"
        )
    if logits.shape[0] == 0:
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), target_ids[mask].long())


ColorizationKind = Literal["mse", "l2", "l1"]


def colorization_loss(pred: Tensor, target: Tensor, kind: ColorizationKind = "mse") -> Tensor:
    """Reconstruction loss of the colorisation decoder (TIC).

    The paper uses a Euclidean loss (and reports it beats Manhattan). ``kind``:

    * ``"mse"`` (default): mean squared error over batch, channels and pixels
      (``F.mse_loss(..., reduction="mean")``); the squared Euclidean distance divided by
      the number of elements, so its scale does not depend on the image size, which keeps
      the paper's 0.02 task weight meaningful at any resolution.
    * ``"l2"``: the Euclidean distance ``||pred_b - target_b||_2`` of each image, averaged
      over the batch (grows with the image size).
    * ``"l1"``: mean absolute error (the Manhattan ablation).

    Both tensors are (B, 3, H, W) and in the same space (the reference setting is the
    colour image after the model's mean/std normalisation).
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"colorization output {tuple(pred.shape)} and target image {tuple(target.shape)} differ in shape"
        )
    pred = pred.float()
    target = target.float()
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "l2":
        return (pred - target).flatten(1).norm(dim=1).mean()
    if kind == "l1":
        return F.l1_loss(pred, target)
    raise ValueError(f"kind must be 'mse', 'l2' or 'l1', got {kind!r}")
