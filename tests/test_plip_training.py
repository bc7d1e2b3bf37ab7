"""PLIP pre-training and CMPM/C fine-tuning end to end on synthetic persons.

References: the paper's total loss L = IVLC + 0.02 TIC + 0.1 IAP (checked term by term in
test_pretext_heads.py); here the tasks must run through the engine, export a model that
``plip.load`` reads (encoder only, in the plip-rn50 key layout), and learn.
"""

from __future__ import annotations

import json

import pytest
import torch

import plip
from plip.errors import ConfigError
from plip.training import load_config, train
from plip.training.tasks.finetune import FinetuneConfig, FinetuneTask
from plip.training.tasks.pretrain import PretrainConfig, PretrainTask

TINY = ["model.name=tiny", "model.freeze_text_layers=1", "data.image_size=[64,32]",
        "data.num_workers=0", "logging.progress=false", "logging.every_steps=1", "train.batch_size=8"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from plip.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "persons"
    generate_dataset(root, identities=20, images_per_id=3, seed=11, workers=0, progress=False)
    return root


def test_pretrain_runs_exports_an_encoder_and_finetune_continues(synth_root, tmp_path):
    cfg = load_config(PretrainConfig, None, TINY + [
        "model.fpn_channels=16", f"data.root={synth_root}", "data.eval_split=test", "train.epochs=1", "train.max_steps=3",
        "eval.every_epochs=1", f"output_dir={tmp_path / 'pre'}", "optim.lr_mult.model.text=0.1",
    ])
    result = train(PretrainTask(), cfg, task_name="pretrain")
    steps = [json.loads(line) for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    logged = [s for s in steps if s["kind"] == "step"]
    assert logged and {"ivlc", "tic", "iap", "loss"} <= set(logged[-1])
    assert result.last_eval is not None and "R@1" in result.last_eval
    encoder = plip.load(result.export_dir)
    reference = plip.create_model(encoder.config)
    assert set(encoder.state_dict()) == set(reference.state_dict())  # no pre-training heads exported

    ft = load_config(FinetuneConfig, None, TINY + [
        f"model.init={result.export_dir}", "model.freeze_text_layers=0", "data.dataset=cuhk-pedes",
        f"data.root={synth_root}", "train.epochs=1", "train.max_steps=2", f"output_dir={tmp_path / 'ft'}",
        "optim.lr_mult.cmpc=10",
    ])
    tuned = train(FinetuneTask(), ft, task_name="finetune")
    assert plip.load(tuned.export_dir).embed_dim == encoder.embed_dim


def test_frozen_text_layers_get_no_gradient(synth_root):
    cfg = load_config(PretrainConfig, None, TINY + [f"data.root={synth_root}", "model.freeze_text_layers=1"])
    model = PretrainTask().build_model(cfg)
    bert = model.model.text.encoder
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert not any(p.requires_grad for p in bert.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in bert.encoder.layer[1].parameters())


def test_config_errors_name_the_key_before_data_is_read(tmp_path):
    with pytest.raises(ConfigError, match="tic_wieght"):
        load_config(PretrainConfig, None, ["model.tic_wieght=1"])
    cfg = load_config(PretrainConfig, None, TINY + ["model.freeze_text_layers=5", f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match="freeze_text_layers"):
        PretrainTask().build_model(cfg)
