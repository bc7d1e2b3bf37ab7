"""The embedded ``plip-tiny-synth`` model and the recipe that trains it.

References: the model card's table (``plip/assets/models/plip-tiny-synth/metrics.json``,
written by ``scripts/make_tiny_synth.py``) and the chance level of each metric (exact
expectation under a random ranking, ``plip.evaluation.chance``).
"""

from __future__ import annotations

import json
import socket
from importlib import resources
from pathlib import Path

import pytest

import plip
from plip.data.synthetic import generate_dataset
from plip.data.textreid import load_text_reid
from plip.evaluation.chance import chance_retrieval_metrics
from plip.evaluation.text_retrieval import evaluate_text_to_image

CARD_DIR = Path(str(resources.files("plip").joinpath("assets/models/plip-tiny-synth")))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_loads_offline_from_the_package(no_network):
    model = plip.load("plip-tiny-synth")
    assert model.name_or_path == "plip-tiny-synth" or "plip-tiny-synth" in str(model.name_or_path)
    emb = model.encode_text(["a woman in a red coat"])
    assert emb.shape == (1, model.embed_dim)
    size = sum(p.stat().st_size for p in CARD_DIR.iterdir())
    assert size <= 20 * 1024 * 1024


def test_recall_on_an_unseen_gallery_matches_the_model_card(tmp_path, no_network):
    """The demo's gallery (seed 2026, ids never used in training): R@1 >= 10x chance, and
    the figures are the ones in the model card."""
    card = {entry["name"]: entry for entry in json.loads((CARD_DIR / "metrics.json").read_text())}
    demo_entry = next(entry for name, entry in card.items() if "seed 2026" in name)
    generate_dataset(tmp_path / "g", identities=100, images_per_id=4, seed=2026, workers=0, progress=False)
    split = load_text_reid("synth-pedes", tmp_path / "g", "all")
    result = evaluate_text_to_image(plip.load("plip-tiny-synth"), split, batch_size=256)
    metrics = result["t2i"]
    chance = chance_retrieval_metrics(split.queries().person_ids, split.gallery().person_ids)
    assert metrics["R@1"] >= 10 * chance["R@1"]
    for key in ("R@1", "R@5", "mAP"):
        assert metrics[key] == pytest.approx(demo_entry["metrics"][key], abs=0.05)
    assert (CARD_DIR / "README.md").read_text().count(f"{metrics['R@1']:.1f}") >= 1


@pytest.mark.slow
def test_recipe_at_reduced_length_learns_and_finetuning_improves(tmp_path):
    """The shipped recipe, shortened to 6 epochs on 280 training identities (about 200 steps):
    R@1 on 120 unseen identities at least 3x chance; CMPM/C fine-tuning then improves it."""
    from plip.training import load_config, train
    from plip.training.tasks.finetune import FinetuneConfig, FinetuneTask
    from plip.training.tasks.pretrain import PretrainConfig, PretrainTask

    root = tmp_path / "synth"
    generate_dataset(root, identities=400, images_per_id=4, seed=7, workers=0, progress=False, split=(0.7, 0.0, 0.3))
    common = [f"data.root={root}", "logging.progress=false", "eval.every_epochs=0"]
    pre = train(PretrainTask(), load_config(PretrainConfig, "pretrain_tiny_synth", common + [
        "train.epochs=6", "train.batch_size=32", f"output_dir={tmp_path / 'pre'}"]), task_name="pretrain")
    test = load_text_reid("synth-pedes", root, "test")
    chance = chance_retrieval_metrics(test.queries().person_ids, test.gallery().person_ids)["R@1"]
    before = evaluate_text_to_image(plip.load(pre.export_dir), test)["t2i"]["R@1"]
    assert before >= 3 * chance, (before, chance)

    ft = train(FinetuneTask(), load_config(FinetuneConfig, None, common + [
        f"model.init={pre.export_dir}", "model.freeze_text_layers=0", "data.dataset=synth-pedes", "data.image_size=[64,32]", "data.num_workers=0",
        "model.cmpm_variant=paper", "model.cmpm_temperature=0.07", "optim.lr=0.0005", "optim.lr_mult.cmpc=10",
        "train.epochs=2", "train.batch_size=32", "sampler.num_instances=2", f"output_dir={tmp_path / 'ft'}",
    ]), task_name="finetune")
    after = evaluate_text_to_image(plip.load(ft.export_dir), test)["t2i"]["R@1"]
    assert after > before, (before, after, chance)
