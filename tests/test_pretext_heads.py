"""PLIP pre-training heads (TIC decoder, IAP head) and the total pre-training loss.

References: PLIP paper Sec. 3 / PLIP_FACTS.md (decoder layout: 1x1 convs to 256, top-down
FPN, concat at 1/4 resolution, two [text-conditioned SE -> ConvTranspose2d(k3 s2 p1 op1)]
blocks; IAP: token states + image embedding -> transformer block -> Linear(vocab); total
loss L = L_IVLC + 0.02 L_TIC + 0.1 L_IAP).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import BertConfig

from plip.errors import ConfigError
from plip.training.losses import cmpm_loss, colorization_loss, masked_token_loss
from plip.training.pretext import (
    AttributePredictionHead,
    ColorizationDecoder,
    PLIPForPretraining,
    PretrainHeads,
    PretrainLossWeights,
    TextConditionedSE,
    pretraining_losses,
    to_grayscale,
)


def stage_channels(width: int) -> tuple[int, ...]:
    return tuple(width * 4 * 2**i for i in range(4))


def stage_maps(batch: int, width: int, height: int, img_width: int, last_stride: int = 2) -> list[torch.Tensor]:
    """Random maps with the strides of the Modified ResNet (4, 8, 16, 32 or 16 for last_stride=1)."""
    strides = (4, 8, 16, 32 if last_stride == 2 else 16)
    return [torch.randn(batch, c, height // s, img_width // s) for c, s in zip(stage_channels(width), strides)]


def tiny_config(width: int = 8, dim: int = 32, vocab: int = 50) -> SimpleNamespace:
    """Duck-typed stand-in for plip.models.PLIPConfig (only the fields the heads read)."""
    return SimpleNamespace(
        vision=SimpleNamespace(stage_channels=stage_channels(width), output_dim=dim),
        text=SimpleNamespace(
            hidden_size=dim, num_attention_heads=2, intermediate_size=2 * dim, vocab_size=vocab,
            hidden_dropout_prob=0.1, layer_norm_eps=1e-12,
        ),
    )


def test_text_conditioned_se_hand_computed_gate():
    """fc1 = 0 and fc2 = 0 with bias b: gate = sigmoid(b) whatever x and t, output x * gate."""
    se = TextConditionedSE(channels=2, text_dim=3)
    nn.init.zeros_(se.fc1.weight), nn.init.zeros_(se.fc1.bias), nn.init.zeros_(se.fc2.weight)
    with torch.no_grad():
        se.fc2.bias.copy_(torch.tensor([0.0, 2.0]))
    x = torch.randn(1, 2, 3, 4)
    out = se(x, torch.randn(1, 3))
    assert torch.allclose(out[0, 0], x[0, 0] * 0.5)
    assert torch.allclose(out[0, 1], x[0, 1] * torch.sigmoid(torch.tensor(2.0)))
    assert se.fc1.in_features == 2 + 3 and se.fc2.out_features == 2


def test_text_conditioned_se_depends_on_the_text():
    torch.manual_seed(0)
    se = TextConditionedSE(channels=4, text_dim=5)
    x = torch.randn(2, 4, 3, 3)
    assert not torch.allclose(se(x, torch.randn(2, 5)), se(x, torch.randn(2, 5)))


def test_decoder_full_size_rn50_channels_reconstructs_256x128():
    """RN50 stage maps (256@64x32 ... 2048@8x4) -> 3x256x128, with the paper's channel counts."""
    decoder = ColorizationDecoder(stage_channels(64), text_dim=768)
    assert [conv.in_channels for conv in decoder.lateral] == [256, 512, 1024, 2048]
    assert decoder.se1.fc1.in_features == 1024 + 768
    assert (decoder.up1.in_channels, decoder.up1.out_channels) == (1024, 256)
    assert (decoder.up2.in_channels, decoder.up2.out_channels) == (256, 3)
    with torch.no_grad():
        out = decoder(stage_maps(1, 64, 256, 128), torch.randn(1, 768))
    assert out.shape == (1, 3, 256, 128)


@pytest.mark.parametrize("size", [(384, 128), (64, 32), (256, 128)])
def test_decoder_output_equals_input_size_for_tiny_widths(size):
    decoder = ColorizationDecoder(stage_channels(8), text_dim=16, fpn_channels=8)
    out = decoder(stage_maps(2, 8, *size), torch.randn(2, 16))
    assert out.shape == (2, 3, *size)


def test_decoder_handles_last_stride_one_backbones():
    """BoT/MGN-style backbones keep layer4 at 1/16: the FPN resizes to the next map's size."""
    decoder = ColorizationDecoder(stage_channels(8), text_dim=16, fpn_channels=8)
    assert decoder(stage_maps(2, 8, 64, 32, last_stride=1), torch.randn(2, 16)).shape == (2, 3, 64, 32)


def test_decoder_gradients_reach_every_parameter_the_stages_and_the_text():
    decoder = ColorizationDecoder(stage_channels(8), text_dim=16, fpn_channels=8)
    stages = [s.requires_grad_() for s in stage_maps(2, 8, 64, 32)]
    text = torch.randn(2, 16, requires_grad=True)
    colorization_loss(decoder(stages, text), torch.randn(2, 3, 64, 32)).backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert all(s.grad.abs().sum() > 0 for s in stages) and text.grad.abs().sum() > 0


def test_decoder_rejects_wrong_stage_channels():
    decoder = ColorizationDecoder(stage_channels(8), text_dim=16, fpn_channels=8)
    stages = stage_maps(1, 8, 64, 32)
    stages[1] = torch.randn(1, 63, 8, 4)
    with pytest.raises(ValueError, match=r"stage 2 must be \(B, 64, H, W\), got \(1, 63, 8, 4\)"):
        decoder(stages, torch.randn(1, 16))


def test_decoder_without_hidden_norm_act_has_no_batchnorm():
    decoder = ColorizationDecoder(stage_channels(8), text_dim=16, fpn_channels=8, hidden_norm_act=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in decoder.modules())
    assert decoder(stage_maps(1, 8, 64, 32), torch.randn(1, 16)).shape == (1, 3, 64, 32)


def iap_inputs(batch=2, length=6, dim=32):
    torch.manual_seed(0)
    hidden = torch.randn(batch, length, dim)
    image = torch.randn(batch, dim)
    attention = torch.ones(batch, length, dtype=torch.long)
    attention[1, 4:] = 0
    target = torch.zeros(batch, length, dtype=torch.bool)
    target[0, 2] = target[1, 1] = target[1, 3] = True
    return hidden, image, attention, target


def test_attribute_head_shapes_and_gathered_logits():
    head = AttributePredictionHead.from_text_config(tiny_config().text).eval()
    hidden, image, attention, target = iap_inputs()
    full = head(hidden, image, attention)
    assert full.shape == (2, 6, 50)
    gathered = head(hidden, image, attention, target_mask=target)
    assert gathered.shape == (3, 50)
    assert torch.allclose(gathered, full[target], atol=1e-5)


def test_attribute_head_ignores_padding_and_uses_the_image():
    head = AttributePredictionHead.from_text_config(tiny_config().text).eval()
    hidden, image, attention, _ = iap_inputs()
    reference = head(hidden, image, attention)
    changed = hidden.clone()
    changed[1, 4:] = 100.0  # padded positions of caption 1
    assert torch.allclose(head(changed, image, attention)[1, :4], reference[1, :4], atol=1e-5)
    assert not torch.allclose(head(hidden, torch.randn_like(image), attention), reference)


def test_attribute_head_from_bert_config_and_image_projection():
    config = BertConfig(vocab_size=40, hidden_size=16, num_attention_heads=4, intermediate_size=24)
    head = AttributePredictionHead.from_text_config(config, image_dim=10)
    assert isinstance(head.image_proj, nn.Linear) and head.image_proj.in_features == 10
    assert head.block.linear1.out_features == 24 and head.block.self_attn.num_heads == 4
    assert head(torch.randn(2, 5, 16), torch.randn(2, 10)).shape == (2, 5, 40)
    assert isinstance(AttributePredictionHead.from_text_config(config).image_proj, nn.Identity)


def heads_and_batch(batch=4, width=8, dim=32, size=(64, 32), vocab=50):
    torch.manual_seed(0)
    heads = PretrainHeads.from_config(tiny_config(width, dim, vocab))
    hidden, _, attention, target = iap_inputs(batch, 6, dim)
    inputs = dict(
        image_emb=torch.randn(batch, dim, requires_grad=True),
        text_emb=torch.randn(batch, dim, requires_grad=True),
        labels=torch.tensor([0, 0, 1, 2][:batch]),
        gray_stages=[s.requires_grad_() for s in stage_maps(batch, width, *size)],
        color_images=torch.randn(batch, 3, *size),
        masked_hidden_states=hidden.requires_grad_(),
        attention_mask=attention,
        target_ids=torch.randint(0, vocab, (batch, 6)),
        target_mask=target,
    )
    return heads, inputs


def test_pretraining_losses_combine_with_the_paper_weights():
    heads, inputs = heads_and_batch()
    heads.eval()  # deterministic (dropout off) so the parts can be recomputed
    out = pretraining_losses(heads, **inputs)
    assert set(out) == {"loss", "ivlc", "tic", "iap"}
    assert out["loss"].item() == pytest.approx(out["ivlc"].item() + 0.02 * out["tic"].item() + 0.1 * out["iap"].item(), rel=1e-6)
    # each part is the plain loss of its head's output
    assert out["ivlc"].item() == pytest.approx(cmpm_loss(inputs["image_emb"], inputs["text_emb"], inputs["labels"]).item())
    colour = heads.decoder(inputs["gray_stages"], inputs["text_emb"])
    assert out["tic"].item() == pytest.approx(colorization_loss(colour, inputs["color_images"]).item(), rel=1e-6)
    logits = heads.attribute_head(inputs["masked_hidden_states"], inputs["image_emb"], inputs["attention_mask"])
    assert out["iap"].item() == pytest.approx(
        masked_token_loss(logits, inputs["target_ids"], inputs["target_mask"]).item(), rel=1e-5
    )


def test_pretraining_losses_gradients_reach_heads_and_inputs():
    heads, inputs = heads_and_batch()
    pretraining_losses(heads, **inputs)["loss"].backward()
    for name, parameter in heads.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    for key in ("image_emb", "text_emb", "masked_hidden_states"):
        assert inputs[key].grad.abs().sum() > 0, key
    assert all(s.grad.abs().sum() > 0 for s in inputs["gray_stages"])


def test_tasks_switch_off_with_zero_weight_and_missing_heads_are_reported():
    heads, inputs = heads_and_batch()
    out = pretraining_losses(heads, **inputs, weights=PretrainLossWeights(ivlc=1.0, tic=0.0, iap=0.0))
    assert set(out) == {"loss", "ivlc"} and out["loss"].item() == pytest.approx(out["ivlc"].item())
    only_iap = PretrainHeads.from_config(tiny_config(), tic=False)
    assert only_iap.decoder is None
    with pytest.raises(ConfigError, match="heads.decoder is None"):
        pretraining_losses(only_iap, **inputs)
    with pytest.raises(ConfigError, match="no gray_stages"):
        pretraining_losses(heads, **{**inputs, "gray_stages": None})
    with pytest.raises(ConfigError, match="loss weight tic"):
        PretrainLossWeights(tic=-1.0)
    with pytest.raises(ConfigError, match="every pre-training loss weight is 0"):
        pretraining_losses(heads, **inputs, weights=PretrainLossWeights(0.0, 0.0, 0.0))


def test_to_grayscale_hand_computed():
    """A pure red pixel (1, 0, 0) has luma 0.299 in every channel after un-normalising."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    pixel = torch.tensor([1.0, 0.0, 0.0])
    normalised = ((pixel - torch.tensor(mean)) / torch.tensor(std)).view(1, 3, 1, 1)
    gray = to_grayscale(normalised, mean, std)
    restored = gray.view(3) * torch.tensor(std) + torch.tensor(mean)
    assert torch.allclose(restored, torch.full((3,), 0.299), atol=1e-6)


def test_plip_for_pretraining_runs_model_and_heads_in_one_forward():
    from plip import create_model
    from plip.models import PLIPConfig

    torch.manual_seed(0)
    model = create_model(PLIPConfig.tiny())  # the real encoder, tiny size
    wrapper = PLIPForPretraining(model, PretrainHeads.from_config(model.config))
    images = torch.randn(4, 3, 64, 32)
    input_ids = torch.randint(5, 50, (4, 6))
    attention = torch.ones(4, 6, dtype=torch.long)
    target = torch.zeros(4, 6, dtype=torch.bool)
    target[:, 2] = True
    out = wrapper(
        images, input_ids, attention, torch.tensor([0, 0, 1, 1]),
        gray_images=to_grayscale(images, (0.5,) * 3, (0.25,) * 3),
        masked_input_ids=input_ids.masked_fill(target, 3), target_mask=target,
    )
    assert set(out) == {"loss", "ivlc", "tic", "iap"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    for name, parameter in wrapper.named_parameters():
        assert parameter.grad is not None, name
    with pytest.raises(ConfigError, match="no gray_stages"):
        wrapper(images, input_ids, attention, torch.tensor([0, 0, 1, 1]))
