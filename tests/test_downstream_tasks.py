"""``plip train bot|mgn|par`` end to end on tiny synthetic benchmarks, and the model folders.

The datasets are in the real formats with synthetic persons (plip.data.synthetic): the
Market-1501 file names written here, the PA-100K ``annotation.mat`` by ``write_pa100k``; the
backbone is a tiny PLIP model folder. Each run trains a few steps on CPU, evaluates, exports, and the
exported folder is reloaded with plip.downstream.load_model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plip.data.attribute_names import PA100K_ATTRIBUTES
from plip.downstream import BoT, load_model
from plip.training.tasks.bot import BoTConfig
from plip.training.tasks.mgn import MGNConfig
from plip.training.tasks.par import PARConfig
from plip.errors import ConfigError
from plip import create_model
from plip.models import PLIPConfig
from plip.training import get_task, list_tasks, load_config, train


def _render(person, shot, seed=0):
    from plip.data.synthetic import render_image, sample_variation

    return render_image(person, sample_variation(np.random.default_rng([seed, person.person_id, shot])))


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """A Market-1501-format folder: 4 training identities x 4 images over 2 cameras, and
    3 test identities with 1 query and 2 gallery images each (other cameras), plus a junk image."""
    from plip.data.synthetic import sample_identities

    root = tmp_path_factory.mktemp("market")
    folders = {name: root / name for name in ("bounding_box_train", "query", "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir()
    people = sample_identities(7, seed=3)
    for person in people[:4]:
        for shot in range(4):
            _render(person, shot).save(folders["bounding_box_train"] / f"{person.person_id:04d}_c{1 + shot % 2}s1_{shot:06d}_00.jpg")
    for person in people[4:]:
        _render(person, 0).save(folders["query"] / f"{person.person_id:04d}_c1s1_000000_00.jpg")
        for shot in (1, 2):
            _render(person, shot).save(folders["bounding_box_test"] / f"{person.person_id:04d}_c{1 + shot}s1_{shot:06d}_00.jpg")
    _render(people[0], 9).save(folders["bounding_box_test"] / "-1_c1s1_000009_00.jpg")
    return root


@pytest.fixture(scope="module")
def tiny_plip_folder(tmp_path_factory):
    config = PLIPConfig.tiny()
    config.vision.layers = (1, 1, 2, 1)  # two layer3 blocks, so MGN's branches copy layer3[1:]
    folder = tmp_path_factory.mktemp("plip") / "tiny"
    torch.manual_seed(0)
    create_model(config.validate()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pa100k(tmp_path_factory):
    """A PA-100K-format folder (annotation.mat + data/, the 26 attributes read off what was drawn;
    ``plip synth --format pa100k``): 6 train, 2 val, 4 test persons x 2 images."""
    from plip.data.synthetic.formats import write_pa100k

    root = tmp_path_factory.mktemp("pa100k") / "pa100k"
    write_pa100k(root, identities=12, images_per_id=2, seed=5, split=(6 / 12, 2 / 12, 4 / 12), progress=False)
    return root


def _run(task_name, overrides, tmp_path):
    task = get_task(task_name)
    common = [f"output_dir={tmp_path / task_name}", "train.device=cpu", "data.num_workers=0",
              "logging.progress=false", "train.max_steps=3", "train.epochs=1", "eval.every_epochs=1"]
    cfg = load_config(task.config_class, task.default_recipe, common + overrides)  # what `plip train` does
    return train(task, cfg, task_name=task_name)


def test_tasks_are_registered_with_recipes():
    assert {"bot", "mgn", "par"} <= set(list_tasks())
    for name, cls, recipe in (("bot", BoTConfig, "bot_market1501"), ("mgn", MGNConfig, "mgn_market1501"),
                              ("par", PARConfig, "par_pa100k")):
        cfg = load_config(cls, recipe)
        assert isinstance(get_task(name), object) and cfg.model.name == "plip-rn50"
    bot = load_config(BoTConfig, "bot_market1501")
    assert (bot.model.last_stride, bot.model.margin, bot.model.label_smoothing) == (1, 0.3, 0.1)
    assert (bot.train.batch_size, bot.sampler.num_instances, bot.schedule.milestones) == (64, 4, [40, 70])
    mgn = load_config(MGNConfig, "mgn_market1501")
    assert tuple(mgn.data.image_size) == (384, 128) and mgn.model.margin == 1.2


def test_plip_train_bot_end_to_end(market, tiny_plip_folder, tmp_path):
    result = _run("bot", [f"data.root={market}", f"model.name={tiny_plip_folder}", "data.image_size=[64,32]",
                          "train.batch_size=8", "eval.batch_size=4"], tmp_path)
    assert result.global_step == 2  # one epoch: 16 training images in batches of 2 identities x 4 images
    assert set(result.last_eval) == {"mAP", "rank1", "rank5", "rank10", "mINP"}
    assert all(0.0 <= v <= 1.0 for v in result.last_eval.values())
    model = load_model(result.export_dir)
    assert isinstance(model, BoT) and model.num_classes == 4 and model.backbone.config.last_stride == 1
    assert not model.training
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 32)).shape == (2, model.embed_dim)


def test_plip_train_cli_with_the_shipped_recipe(market, tiny_plip_folder, tmp_path):
    """`plip train bot --config bot_market1501 key=value ...` as a user runs it."""
    from plip.app.cli.main import main

    out = tmp_path / "cli"
    code = main(["train", "bot", "--config", "bot_market1501", f"data.root={market}",
                 f"model.name={tiny_plip_folder}", "data.image_size=[64,32]", "data.num_workers=0",
                 "train.batch_size=8", "train.max_steps=1", "train.device=cpu", "logging.progress=false",
                 f"output_dir={out}"])
    assert code == 0
    assert load_model(out / "model").num_classes == 4


def test_plip_train_mgn_end_to_end(market, tiny_plip_folder, tmp_path):
    result = _run("mgn", [f"data.root={market}", f"model.name={tiny_plip_folder}", "data.image_size=[64,32]",
                          "train.batch_size=8", "model.feat_dim=16", "eval.batch_size=4"], tmp_path)
    assert result.last_eval["mAP"] >= 0.0
    model = load_model(result.export_dir)
    assert model.embed_dim == 8 * 16 and tuple(model.image_size) == (64, 32)


def test_plip_train_par_end_to_end_and_continue_from_init(pa100k, tiny_plip_folder, tmp_path):
    result = _run("par", [f"data.root={pa100k}", f"model.name={tiny_plip_folder}", "data.image_size=[64,32]",
                          "train.batch_size=8"], tmp_path)
    assert set(result.last_eval) == {"mA", "accuracy", "precision", "recall", "f1", "loss"}
    model = load_model(result.export_dir)
    assert model.attribute_names == list(PA100K_ATTRIBUTES)
    again = _run("par", [f"data.root={pa100k}", f"model.init={result.export_dir}", "data.image_size=[64,32]",
                         "train.batch_size=8", f"output_dir={tmp_path / 'again'}"], tmp_path)
    assert again.global_step >= 1


def test_missing_dataset_root_is_a_config_error(tiny_plip_folder, tmp_path):
    with pytest.raises(ConfigError, match="data.root"):
        _run("bot", [f"model.name={tiny_plip_folder}"], tmp_path)


def test_train_transform_reduces_to_plip_preprocessing():
    """Without augmentation the training transform is PLIP's preprocessing (PIL bicubic resize,
    SYNTH-PEDES mean/std); a flip gives the mirrored tensor, erasing writes zeros (the mean colour)."""
    from plip.data.synthetic import sample_identities
    from plip.downstream.data import eval_transform, train_transform
    from plip.models.config import PreprocessConfig

    torch.manual_seed(0)
    image = _render(sample_identities(1, seed=0)[0], 0)
    config = PreprocessConfig(image_size=(64, 32))
    reference = eval_transform(config)(image)
    plain = train_transform(config, flip=False, pad=0, random_erasing=0.0)
    torch.testing.assert_close(plain(image), reference, rtol=0, atol=0)
    flips = [train_transform(config, flip=True)(image) for _ in range(8)]
    assert all(torch.equal(f, reference) or torch.equal(f, reference.flip(2)) for f in flips)
    assert any(torch.equal(f, reference.flip(2)) for f in flips)
    padded = train_transform(config, flip=False, pad=10)(image)
    assert padded.shape == reference.shape
    erased = train_transform(config, flip=False, random_erasing=1.0)(image)
    changed = (erased != reference).any(dim=0)
    assert changed.any() and bool((erased[:, changed] == 0).all())
