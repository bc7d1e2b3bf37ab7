"""The model against the official architecture: key names, shapes and forward semantics.

References: ``tests/data/official_checkpoint_keys.tsv`` (every key and shape of the released
``PLIP_RN50.pth.tar``), PLIP_FACTS (stage map sizes), and an independent functional
re-implementation of CLIP's Modified ResNet forward written below with torch.nn.functional
and ``F.multi_head_attention_forward`` (CLIP's own attention-pool formulation).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from plip.errors import ConfigError
from plip import PLIPModel, create_model
from plip.models import PLIPConfig

KEYS_FILE = Path(__file__).parent / "data" / "official_checkpoint_keys.tsv"


def official_keys() -> dict[str, str]:
    keys = {}
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        entry, key, shape = line.split("\t")
        prefix = "visual." if entry == "ImgEncoder_state_dict" else "text."
        keys[prefix + key] = shape.strip()
    return keys


@pytest.fixture(scope="module")
def rn50():
    torch.manual_seed(0)
    return create_model(PLIPConfig.rn50()).eval()


def test_rn50_has_exactly_the_official_keys_and_shapes(rn50):
    ours = {k: str(tuple(v.shape)) for k, v in rn50.state_dict().items()}
    expected = official_keys()
    assert len(expected) == 538
    assert set(ours) == set(expected)
    assert {k: ours[k] for k in expected if ours[k] != expected[k]} == {}


def test_rn50_stage_maps_match_the_paper(rn50):
    with torch.inference_mode():
        final, stages = rn50.visual.forward_intermediates(torch.randn(1, 3, 256, 128))
        embedding = rn50.visual.forward_head(final)
    shapes = [tuple(s.shape[1:]) for s in stages]
    assert shapes == [(256, 64, 32), (512, 32, 16), (1024, 16, 8), (2048, 8, 4)]
    assert final is stages[-1] and embedding.shape == (1, 768)
    assert rn50.visual.num_features == 2048 and rn50.visual.head_hidden_size == 768


def _bn(x, state, prefix):
    return F.batch_norm(
        x, state[prefix + ".running_mean"], state[prefix + ".running_var"],
        state[prefix + ".weight"], state[prefix + ".bias"], training=False, eps=1e-5,
    )


def reference_image_forward(state: dict, x: torch.Tensor, layers, heads: int) -> torch.Tensor:
    """CLIP's ModifiedResNet forward, written functionally from the official key names."""
    x = F.relu(_bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=1), state, "bn1"))
    x = F.relu(_bn(F.conv2d(x, state["conv2.weight"], padding=1), state, "bn2"))
    x = F.relu(_bn(F.conv2d(x, state["conv3.weight"], padding=1), state, "bn3"))
    x = F.avg_pool2d(x, 2)
    for stage, blocks in enumerate(layers, start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1
            out = F.relu(_bn(F.conv2d(x, state[p + ".conv1.weight"]), state, p + ".bn1"))
            out = F.relu(_bn(F.conv2d(out, state[p + ".conv2.weight"], padding=1), state, p + ".bn2"))
            if stride > 1:
                out = F.avg_pool2d(out, stride)
            out = _bn(F.conv2d(out, state[p + ".conv3.weight"]), state, p + ".bn3")
            if p + ".downsample.0.weight" in state:
                identity = F.avg_pool2d(x, stride) if stride > 1 else x
                identity = _bn(F.conv2d(identity, state[p + ".downsample.0.weight"]), state, p + ".downsample.1")
            else:
                identity = x
            x = F.relu(out + identity)
    # CLIP AttentionPool2d.forward
    x = x.flatten(start_dim=2).permute(2, 0, 1)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    x = x + state["attnpool.positional_embedding"][:, None, :]
    x, _ = F.multi_head_attention_forward(
        query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=heads,
        q_proj_weight=state["attnpool.q_proj.weight"], k_proj_weight=state["attnpool.k_proj.weight"],
        v_proj_weight=state["attnpool.v_proj.weight"], in_proj_weight=None,
        in_proj_bias=torch.cat([state["attnpool.q_proj.bias"], state["attnpool.k_proj.bias"], state["attnpool.v_proj.bias"]]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=state["attnpool.c_proj.weight"], out_proj_bias=state["attnpool.c_proj.bias"],
        use_separate_proj_weight=True, training=False, need_weights=False,
    )
    return x.squeeze(0)


def test_image_forward_equals_functional_clip_reference(tiny_model):
    config = tiny_model.config.vision
    x = torch.randn(3, 3, *config.image_size)
    with torch.inference_mode():
        ours = tiny_model.visual(x)
        ref = reference_image_forward(tiny_model.visual.state_dict(), x, config.layers, config.heads)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_image_forward_reference_with_deeper_config():
    config = PLIPConfig.tiny(image_size=(96, 64))
    config.vision.layers = (2, 1, 2, 1)
    model = create_model(config.validate()).eval()
    x = torch.randn(2, 3, 96, 64)
    with torch.inference_mode():
        torch.testing.assert_close(
            model.visual(x),
            reference_image_forward(model.visual.state_dict(), x, config.vision.layers, config.vision.heads),
            rtol=1e-5, atol=1e-5,
        )


def test_text_embedding_is_bert_pooler_output(tiny_model):
    """The official TxtEncoder returns BertModel(...).pooler_output."""
    from transformers import BertModel

    from plip.models.text_encoder import bert_config

    bert = BertModel(bert_config(tiny_model.config.text)).eval()
    bert.load_state_dict({k[len("encoder."):]: v for k, v in tiny_model.text.state_dict().items()})
    batch = tiny_model.tokenizer(["a man in a black shirt", "a woman with a red bag and white shoes"])
    with torch.inference_mode():
        ours = tiny_model.text(batch["input_ids"], batch["attention_mask"]).embedding
        ref = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_embed_equals_bert_pooler_output_on_padded_batches(tiny_model, attention):
    """``TextEncoder.embed`` runs the last layer for [CLS] only (what inference and export call):
    its output must be transformers' ``BertModel(...).pooler_output`` of the full forward, with
    padding in the batch (an empty caption, a short and a long one) under either attention implementation."""
    from transformers import BertModel

    from plip.models.text_encoder import bert_config

    config = bert_config(tiny_model.config.text)
    config._attn_implementation = attention
    bert = BertModel(config).eval()
    bert.load_state_dict({k[len("encoder."):]: v for k, v in tiny_model.text.state_dict().items()})
    batch = tiny_model.tokenizer.pad(tiny_model.tokenizer.encode(
        ["", "a man in a black shirt", "a woman with a red bag and white shoes walking towards the camera on a sunny day"]))
    assert batch["attention_mask"].sum(1).unique().numel() == 3  # three lengths: two rows carry padding
    with torch.inference_mode():
        ours = tiny_model.text.embed(batch["input_ids"], batch["attention_mask"])
        ref = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_mean_pooling_averages_real_tokens_only(tiny_config):
    config = PLIPConfig.from_dict({**tiny_config.to_dict(), "text": {**tiny_config.to_dict()["text"], "pooling": "mean"}})
    model = create_model(config).eval()
    batch = model.tokenizer(["short", "a much longer caption about a person"])
    with torch.inference_mode():
        features = model.text(batch["input_ids"], batch["attention_mask"])
    n = int(batch["attention_mask"][0].sum())
    torch.testing.assert_close(features.embedding[0], features.hidden_states[0, :n].mean(0))


def test_last_stride_one_keeps_layer4_at_one_sixteenth():
    config = PLIPConfig.tiny()
    config.vision.last_stride = 1
    model = create_model(config.validate()).eval()
    with torch.inference_mode():
        layer4 = model.visual.forward_features(torch.randn(1, 3, 64, 32))
    assert layer4.shape[-2:] == (4, 2)
    assert model.visual.attnpool.positional_embedding.shape[0] == 4 * 2 + 1


def test_config_round_trips_through_json(tmp_path, tiny_config):
    tiny_config.save(tmp_path / "config.json")
    assert PLIPConfig.load(tmp_path / "config.json") == tiny_config


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"vision": {"widht": 8}}, "unknown config key 'vision.widht'.*did you mean 'vision.width'"),
        ({"vision": {"width": "8"}}, "config key 'vision.width' expects int"),
        ({"text": {"pooling": "max"}}, "text.pooling"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"vision": {"image_size": [100, 50]}}, "multiples of 32"),
    ],
)
def test_bad_config_names_the_key(tiny_config, patch, message):
    data = tiny_config.to_dict()
    for key, value in patch.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    with pytest.raises(ConfigError, match=message):
        PLIPConfig.from_dict(data)
