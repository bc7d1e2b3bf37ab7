"""The shipped recipes against their reference code, and the pieces they are built from.

Oracles: the references' schedules re-implemented from their code's rules (official PLIP
``gradual_warmup`` + torch ``MultiStepLR``; reid-strong-baseline's ``WarmupMultiStepLR``
stepped at each epoch start; torch's ``ReduceLROnPlateau``), rsb's centre update (SGD lr 0.5
on the gradient divided by the centre-loss weight), timm's ``ModelEmaV2``, ``torch.optim.Adam``.
"""

from __future__ import annotations

import ast
import bisect
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from plip.errors import ConfigError
from plip.training import get_task, list_tasks, load_config
from plip.training.optim import ScaledGradSGD, build_optimizer, build_scheduler

PKG = Path(__file__).resolve().parents[1] / "plip"
STEPS_PER_EPOCH = 3


def plip_schedule(recipe: str, task: str, steps_per_epoch: int = STEPS_PER_EPOCH) -> list[float]:
    """Our learning-rate factor at every optimizer step of the recipe."""
    cfg = load_config(get_task(task).config_class, recipe)
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = build_scheduler(opt, cfg.schedule, cfg.train.epochs, steps_per_epoch)
    lrs = []
    for _ in range(cfg.train.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def official_plip(epochs: int, warm_epochs: int, milestones: list[int]) -> list[float]:
    """Official PLIP train.py: ``gradual_warmup`` multiplies the current rate by
    (e+1)/e (by 1/W at epoch 0) in the first W epochs; MultiStepLR stepped at epoch ends."""
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    per_epoch = []
    for epoch in range(epochs):
        if epoch < warm_epochs:
            done = (epoch + 1) / warm_epochs if epoch == 0 else (epoch + 1) / epoch
            for g in opt.param_groups:
                g["lr"] = g["lr"] * done
        per_epoch.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return per_epoch


def rsb(epochs: int, milestones: list[int], warmup_factor: float, warmup_iters: int) -> list[float]:
    """reid-strong-baseline: WarmupMultiStepLR(last_epoch) = linear warm-up from the factor over
    ``warmup_iters`` x gamma^bisect_right(milestones, last_epoch); its trainer calls
    ``scheduler.step()`` at each epoch start, so epoch e (0-based) trains at last_epoch = e+1."""
    out = []
    for e in range(epochs):
        last = e + 1
        warm = 1.0
        if last < warmup_iters:
            alpha = last / warmup_iters
            warm = warmup_factor * (1 - alpha) + alpha
        out.append(warm * 0.1 ** bisect.bisect_right(milestones, last))
    return out


@pytest.mark.parametrize("recipe, task, reference", [
    ("finetune_cmpmc", "finetune", lambda: official_plip(30, 5, [20])),
    ("pretrain_paper", "pretrain", lambda: official_plip(70, 10, [30, 50])),
    ("pretrain_neurips", "pretrain", lambda: official_plip(70, 10, [30, 50])),
    ("bot_market1501", "bot", lambda: rsb(120, [40, 70], 0.01, 10)),
])
def test_schedule_equals_the_reference_step_by_step(recipe, task, reference):
    ours = plip_schedule(recipe, task)
    ref = [lr for lr in reference() for _ in range(STEPS_PER_EPOCH)]
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_plateau_equals_torch_reduce_lr_on_plateau():
    cfg = load_config(get_task("par").config_class, "par_pa100k")
    assert cfg.schedule.name == "plateau" and cfg.train.ema_decay == 0.9998 and cfg.optim.name == "adam"
    losses = [1.0, 0.9, 0.95, 0.91, 0.9, 0.92, 0.93, 0.899, 0.9, 0.9, 0.91, 0.9, 0.95, 0.96, 0.97, 0.98]
    p1, p2 = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    ours_opt, ref_opt = torch.optim.SGD([p1], lr=1e-4), torch.optim.SGD([p2], lr=1e-4)
    ours = build_scheduler(ours_opt, cfg.schedule, cfg.train.epochs, 2)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, factor=0.1, patience=4)
    for value in losses:
        for _ in range(2):
            ours_opt.step()
            ours.step()
        ours.report(value)
        ref.step(value)
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
    state = copy.deepcopy(ours.state_dict())
    again = build_scheduler(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-4), cfg.schedule, 30, 2)
    again.load_state_dict(state)
    assert again.reductions == ours.reductions >= 1


def test_centres_move_as_reid_strong_baseline_moves_them():
    """rsb: loss = ... + w * center_loss; the centres' SGD (lr 0.5) steps on grad / w."""
    from plip.downstream.losses import CenterLoss

    torch.manual_seed(0)
    w = 0.0005
    ours, ref = CenterLoss(8, 16), CenterLoss(8, 16)
    ref.load_state_dict(ours.state_dict())
    opt = ScaledGradSGD(ours.parameters(), lr=0.5, grad_scale=1 / w)
    for _ in range(5):
        feats, labels = torch.randn(32, 16), torch.randint(0, 8, (32,))
        opt.zero_grad()
        (w * ours(feats, labels)).backward()
        opt.step()
        ref.centers.grad = None
        (w * ref(feats, labels)).backward()
        with torch.no_grad():
            ref.centers -= 0.5 * ref.centers.grad / w
    torch.testing.assert_close(ours.centers, ref.centers, rtol=0, atol=1e-6)


def test_bot_recipe_gives_the_centres_their_own_optimizer(tmp_path):
    from plip.training.tasks.bot import BoTTask
    from plip.training.tasks._downstream import TrainingModule
    from plip.downstream.bot import BoTLoss

    task = BoTTask()
    cfg = load_config(task.config_class, "bot_market1501")
    assert cfg.model.center_lr == 0.5 and cfg.schedule.epoch_offset == 1 and cfg.model.triplet_gather
    module = TrainingModule(nn.Linear(4, 4), BoTLoss(3, 4, center_weight=cfg.model.center_weight))
    groups = task.param_groups(module, cfg)
    centers = module.criterion.center.centers
    assert all(p is not centers for g in groups for p in g["params"])
    extra = task.extra_optimizers(module, cfg)
    assert extra["center"].param_groups[0]["params"] == [centers]
    assert extra["center"].param_groups[0]["lr"] == 0.5 and extra["center"].grad_factor == 1 / 0.0005


def test_adam_is_torch_adam_with_coupled_l2():
    cfg = load_config(get_task("bot").config_class, "bot_market1501").optim
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    ours = build_optimizer([{"name": "all", "params": list(a.parameters())}], cfg)
    ref = torch.optim.Adam(b.parameters(), lr=3.5e-4, weight_decay=5e-4)
    for _ in range(3):
        x = torch.randn(5, 3)
        for model, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_ema_equals_timm_model_ema_v2():
    from timm.utils import ModelEmaV2

    from plip.training.engine import ModelEMA

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    ours, ref = ModelEMA(model, 0.9), ModelEmaV2(model, decay=0.9)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(4):
        opt.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        opt.step()
        ours.update(model)
        ref.update(model)
    for k, v in ref.module.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(ours.state[k], v, rtol=1e-6, atol=1e-7)


def test_tasks_register_themselves_and_the_engine_names_none():
    """Registry owned by what it registers: the decorator at each task's definition."""
    assert set(list_tasks()) >= {"pretrain", "finetune", "bot", "mgn", "par"}
    init = (PKG / "training" / "__init__.py").read_text()
    for name in ("pretrain", "finetune", '"bot"', '"mgn"', '"par"'):
        assert f'register_task("{name.strip(chr(34))}"' not in init
    for module in ("pretrain", "finetune", "bot", "mgn", "par"):
        src = (PKG / "training" / "tasks" / f"{module}.py").read_text()
        assert f'@register_task("{module}")' in src
        assert get_task(module).default_recipe is not None


def test_training_imports_neither_timm_nor_downstream_at_module_level():
    """What `import plip.training` pulls in: no module-level import of timm or plip.downstream
    (they load inside the methods that need them)."""
    for path in (PKG / "training").rglob("*.py"):
        package = ["plip", *path.relative_to(PKG).parent.parts]
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            for name in names:
                assert not name.startswith("timm"), f"{path}: {name}"
                assert not name.startswith("plip.downstream"), f"{path}: {name}"


def test_recipe_defaults_live_in_the_recipes():
    """No config class repeats a recipe's values: the downstream sections are the shared ones."""
    from plip.training.config import OptimConfig, SamplerConfig, ScheduleConfig, TrainConfig

    for task_name in ("bot", "mgn", "par"):
        cls = get_task(task_name).config_class
        hints = {f: type(getattr(cls(), f)) for f in ("sampler", "optim", "schedule", "train")}
        assert hints == {"sampler": SamplerConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
                         "train": TrainConfig}
    mgn = load_config(get_task("mgn").config_class, "mgn_market1501")
    assert tuple(mgn.data.image_size) == (384, 128) and mgn.optim.name == "sgd" and mgn.train.epochs == 80


def test_pretrain_paper_recipe_has_the_papers_tic():
    cfg = load_config(get_task("pretrain").config_class, "pretrain_paper")
    assert (cfg.model.tic_decoder, cfg.model.tic_loss, cfg.model.se_init) == ("paper", "l2", "kaiming")
    with pytest.raises(ConfigError, match="model.tic_loss"):
        load_config(get_task("pretrain").config_class, "pretrain_paper", ["model.tic_loss=l3"])


@pytest.mark.filterwarnings("ignore:.*longer than 12 tokens")
def test_training_uses_the_models_own_tokenizer_and_preprocessing(tmp_path):
    """A model with max_length 12 and its own mean/std: the training data carry exactly its
    tokenization and its preprocessing (oracle: model.tokenizer / model.preprocess)."""
    from plip.data.synthetic import generate_dataset
    from plip import create_model
    from plip.models import PLIPConfig
    from plip.training.tasks.finetune import FinetuneTask
    from plip.training.tasks.pretrain import PretrainTask

    root = tmp_path / "synth"
    generate_dataset(root, identities=4, images_per_id=2, seed=1, workers=0, progress=False)
    config = PLIPConfig.tiny()
    config.text.max_length = 12
    config.preprocess.mean, config.preprocess.std = (0.1, 0.2, 0.3), (0.5, 0.4, 0.3)
    create_model(config.validate()).save_pretrained(tmp_path / "model")
    common = [f"data.root={root}", "data.image_size=[64,32]", "data.flip_prob=0", "model.freeze_text_layers=0",
              f"model.init={tmp_path / 'model'}", "data.dataset=synth-pedes"]
    for task in (FinetuneTask(), PretrainTask()):
        cfg = load_config(task.config_class, None, common)
        model = task.build_model(cfg)
        data = task.build_train_data(cfg)
        encoder = model.model
        assert encoder.tokenizer.max_length == 12
        sample = data.dataset[0]
        image_path = data.dataset.items[0].image_path
        # oracle: the definition of the model's preprocessing with ITS statistics
        pil = Image.open(image_path).convert("RGB").resize((32, 64), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
        expected = (pixels - torch.tensor((0.1, 0.2, 0.3))[:, None, None]) / torch.tensor((0.5, 0.4, 0.3))[:, None, None]
        torch.testing.assert_close(sample["image"], expected, rtol=1e-5, atol=1e-5)
        assert len(sample["input_ids"]) <= 12
        batch = data.collate_fn([data.dataset[i] for i in range(len(data.dataset))])
        assert batch["input_ids"].shape[1] == 12  # the captions are longer: truncated at the model's 12
