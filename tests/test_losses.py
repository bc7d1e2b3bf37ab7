"""Losses of PLIP pre-training / CMPM-C fine-tuning against hand-computed values.

References: Zhang & Lu, "Deep Cross-Modal Projection Learning for Image-Text Matching"
(ECCV 2018) and the released PLIP CMPM-C code (Downstreams/CMPM-C/loss.py), whose formulas
are restated in docs of plip.training.losses.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from plip.errors import DataError
from plip.training.losses import (
    CMPCHead,
    cmpc_logits,
    cmpc_loss,
    cmpm_loss,
    colorization_loss,
    masked_token_loss,
)

EPS = 1e-8


def _kl_row(logits: list[float], q: list[float]) -> float:
    """sum_j p_j (log p_j - log(q_j + eps)), p = softmax(logits), in plain Python."""
    z = sum(math.exp(v) for v in logits)
    p = [math.exp(v) / z for v in logits]
    return sum(pj * (math.log(pj) - math.log(qj + EPS)) for pj, qj in zip(p, q))


# Three image-text pairs; images 0 and 1 show the same person (identity 7).
UNIT = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
LABELS = torch.tensor([7, 7, 3])


def test_cmpm_official_hand_computed_with_two_images_of_one_identity():
    """Unit embeddings: logits = [[1,1,0],[1,1,0],[0,0,1]]; official q = mask/||row||_2."""
    loss = cmpm_loss(UNIT, UNIT, LABELS)
    r = 1 / math.sqrt(2)
    rows = [
        _kl_row([1, 1, 0], [r, r, 0]),
        _kl_row([1, 1, 0], [r, r, 0]),
        _kl_row([0, 0, 1], [0, 0, 1]),
    ]
    expected = 2 * sum(rows) / 3  # i2t and t2i are equal here
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_cmpm_paper_variant_uses_l1_normalised_targets():
    """Paper: q_ij = y_ij / sum_k y_ik (1/2 for each of two positives), cosine logits."""
    loss = cmpm_loss(UNIT, UNIT, LABELS, variant="paper")
    rows = [_kl_row([1, 1, 0], [0.5, 0.5, 0]), _kl_row([1, 1, 0], [0.5, 0.5, 0]), _kl_row([0, 0, 1], [0, 0, 1])]
    assert loss.item() == pytest.approx(2 * sum(rows) / 3, rel=1e-5)
    assert loss.item() != pytest.approx(cmpm_loss(UNIT, UNIT, LABELS).item(), rel=1e-3)


def test_cmpm_official_projects_unnormalised_embeddings_on_normalised_ones():
    """Official logits: image_i · t_j/|t_j| (i2t) and text_i · v_j/|v_j| (t2i), computed by hand."""
    image = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[1.0, 1.0], [0.0, 0.5]])
    labels = torch.tensor([0, 1])
    s = 1 / math.sqrt(2)
    i2t = [[2 * s, 0.0], [3 * s, 3.0]]  # image · normalised text
    t2i = [[1.0, 1.0], [0.0, 0.5]]  # text · normalised image (unit axes)
    expected = sum(_kl_row(i2t[i], [1.0 * (i == j) for j in range(2)]) for i in range(2)) / 2
    expected += sum(_kl_row(t2i[i], [1.0 * (i == j) for j in range(2)]) for i in range(2)) / 2
    assert cmpm_loss(image, text, labels).item() == pytest.approx(expected, rel=1e-5)
    # scale matters for the official variant, not for the cosine (paper) one
    assert cmpm_loss(3 * image, text, labels).item() != pytest.approx(expected, rel=1e-3)
    paper = cmpm_loss(image, text, labels, variant="paper")
    assert cmpm_loss(3 * image, 0.5 * text, labels, variant="paper").item() == pytest.approx(paper.item(), rel=1e-5)


def test_cmpm_matches_the_released_code_formula_on_random_batches():
    """Reference: the released code's label mask `mask / mask.norm(dim=1)` (broadcast over
    columns) and `p * (log_softmax - log(q + eps))`, on a batch with 3 identities x 2-3 images."""
    g = torch.Generator().manual_seed(0)
    image = torch.randn(8, 5, generator=g)
    text = torch.randn(8, 5, generator=g)
    labels = torch.tensor([4, 4, 4, 1, 1, 9, 9, 9])
    mask = (labels[:, None] == labels[None, :]).float()
    q = mask / mask.norm(dim=1)
    i2t = image @ F.normalize(text, dim=1).t()
    t2i = text @ F.normalize(image, dim=1).t()
    ref = sum(
        (F.softmax(x, 1) * (F.log_softmax(x, 1) - torch.log(q + EPS))).sum(1).mean() for x in (i2t, t2i)
    )
    assert cmpm_loss(image, text, labels).item() == pytest.approx(ref.item(), rel=1e-5)


def test_cmpm_asymmetric_text_labels_equal_symmetric_when_same():
    """text_labels given explicitly (e.g. gathered texts) gives the same value as the default."""
    g = torch.Generator().manual_seed(1)
    image, text = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert cmpm_loss(image, text, labels, labels.clone()).item() == pytest.approx(
        cmpm_loss(image, text, labels).item(), rel=1e-6
    )
    # 2 local images against 6 texts: finite, and a row without positives does not give NaN
    local = cmpm_loss(image[:2], text, labels[:2], labels)
    assert torch.isfinite(local)
    assert torch.isfinite(cmpm_loss(image[:2], text[2:], labels[:2], labels[2:]))


def test_cmpm_gradients_flow_and_shape_errors():
    image = torch.randn(4, 3, requires_grad=True)
    text = torch.randn(4, 3, requires_grad=True)
    cmpm_loss(image, text, torch.tensor([0, 0, 1, 2])).backward()
    assert image.grad.abs().sum() > 0 and text.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="labels"):
        cmpm_loss(torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="variant"):
        cmpm_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), variant="nope")


def test_cmpm_half_precision_input_is_computed_in_float32():
    g = torch.Generator().manual_seed(2)
    image, text = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    labels = torch.tensor([0, 1, 1, 2])
    low = cmpm_loss(image.bfloat16(), text.bfloat16(), labels)
    assert low.dtype == torch.float32
    ref = cmpm_loss(image.bfloat16().float(), text.bfloat16().float(), labels)
    assert low.item() == pytest.approx(ref.item(), rel=1e-6)


def test_cmpc_hand_computed():
    """W = [[1,0],[0,2]] -> column-normalised identity. Image (2,0) on text (1,0): projection
    (2,0), logits (2,0); text (1,0) on image (2,0)/2: projection (1,0), logits (1,0).
    Label 0: CE = log(1+e^-2) + log(1+e^-1)."""
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    loss = cmpc_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([0]), weight)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)), rel=1e-6)


def test_cmpc_projection_is_on_the_paired_embedding():
    """Image (1,1) projected on text (1,0) -> (1,0); text (0,2) on image (1,1)/sqrt2 -> (1,1)."""
    weight = torch.eye(2) * 5
    image_logits, text_logits = cmpc_logits(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]]), weight)
    assert torch.allclose(image_logits, torch.tensor([[1.0, 0.0]]))
    image_logits, text_logits = cmpc_logits(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 2.0]]), weight)
    assert torch.allclose(text_logits, torch.tensor([[1.0, 1.0]]), atol=1e-6)


def test_cmpc_head_init_grad_and_label_check():
    head = CMPCHead(num_classes=5, dim=4)
    bound = math.sqrt(6 / (4 + 5))  # xavier-uniform bound
    assert head.weight.shape == (4, 5) and head.weight.abs().max() <= bound
    image = torch.randn(3, 4, requires_grad=True)
    text = torch.randn(3, 4, requires_grad=True)
    head(image, text, torch.tensor([0, 4, 2])).backward()
    assert head.weight.grad.abs().sum() > 0 and image.grad.abs().sum() > 0 and text.grad.abs().sum() > 0
    with pytest.raises(DataError, match="identity label 5 is outside"):
        head(image, text, torch.tensor([1, 5, 2]))
    with pytest.raises(DataError, match="-1"):
        head(image, text, torch.tensor([1, -1, 2]))


def test_masked_token_loss_hand_computed_and_ignores_unmasked_positions():
    """Two masked positions with logits [0, ln 3] (target 1) and [0, 0] (target 0):
    NLL = mean(-ln(3/4), -ln(1/2))."""
    logits = torch.zeros(1, 3, 2)
    logits[0, 0, 1] = math.log(3)
    targets = torch.tensor([[1, 0, 1]])
    mask = torch.tensor([[True, True, False]])
    expected = (-math.log(3 / 4) - math.log(1 / 2)) / 2
    assert masked_token_loss(logits, targets, mask).item() == pytest.approx(expected, rel=1e-6)
    changed = logits.clone()
    changed[0, 2] = torch.tensor([10.0, -10.0])  # unmasked position
    assert masked_token_loss(changed, targets, mask).item() == pytest.approx(expected, rel=1e-6)
    # gathered (K, V) logits give the same value
    assert masked_token_loss(logits[mask], targets, mask).item() == pytest.approx(expected, rel=1e-6)


def test_masked_token_loss_gradient_only_at_masked_positions_and_empty_mask():
    logits = torch.randn(2, 4, 6, requires_grad=True)
    targets = torch.randint(0, 6, (2, 4))
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = True
    masked_token_loss(logits, targets, mask).backward()
    touched = logits.grad.abs().sum(-1) > 0
    assert torch.equal(touched, mask)
    empty = masked_token_loss(logits, targets, torch.zeros_like(mask))
    assert empty.item() == 0.0 and empty.requires_grad


def test_colorization_loss_reductions_hand_computed():
    """pred - target = 1 everywhere on 2 images of 3x2x2 = 12 elements each."""
    pred = torch.ones(2, 3, 2, 2)
    target = torch.zeros(2, 3, 2, 2)
    target[1] = -1.0  # second image differs by 2
    assert colorization_loss(pred, target).item() == pytest.approx((12 * 1 + 12 * 4) / 24)
    assert colorization_loss(pred, target, kind="l2").item() == pytest.approx((math.sqrt(12) + math.sqrt(48)) / 2)
    assert colorization_loss(pred, target, kind="l1").item() == pytest.approx((12 + 24) / 24)
    with pytest.raises(ValueError, match="differ in shape"):
        colorization_loss(pred, target[:, :, :1])
