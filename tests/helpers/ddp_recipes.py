"""Worker of tests/test_training_ddp.py, run by ``torchrun --nproc_per_node=2`` (gloo, CPU).

One spawned process group does everything, so the test pays the start-up once:

1. for every shipped recipe, at tiny size: one single-process step checks that every trainable
   parameter gets a gradient, then ``train()`` runs a few steps under DDP;
2. ``1 x 2B == 2 x B``: for the global losses (gathered CMPM/C; gathered BoT and MGN losses with
   batch-hard mining), a DDP step on two halves gives the loss and the gradients of one
   process on the whole batch; with ``cmpm_gather: false`` each rank's loss is the official
   per-GPU CMPM of its own half and the gradient the mean of the halves' gradients.

Usage: ``torchrun --standalone --nproc_per_node=2 ddp_recipes.py SPEC.json OUT.json`` where
SPEC gives the dataset roots, the tiny PLIP folder and the output folder.
"""

from __future__ import annotations

import copy
import json
import sys
import traceback

import torch
import torch.distributed as dist
from torch import nn


def tiny_overrides(recipe: str, spec: dict, out: str) -> list[str]:
    """Overrides that shrink a shipped recipe to a few CPU steps (what each task needs)."""
    common = ["data.num_workers=0", "logging.progress=false", "logging.every_steps=1", "train.amp=none",
              "train.sync_bn=false", "eval.every_epochs=0", f"output_dir={out}/{recipe}", "train.seed=1"]
    task = recipe.split("_")[0]
    if task == "pretrain":
        # a timm-tower recipe stays a timm tower: swin-micro (random init, nothing downloaded)
        tower = ["model.name=swin-micro", "model.timm_pretrained=false", "model.image_head=avg"] \
            if ("swin" in recipe or "timm" in recipe) else ["model.name=tiny"]
        return common + tower + ["model.init=null", "data.image_size=[64,32]", "model.fpn_channels=16",
                         "model.freeze_text_layers=1", f"data.root={spec['synth']}", "data.eval_root=",
                         "data.eval_dataset=", "train.batch_size=4", "train.epochs=1", "train.max_steps=2"]
    if task == "finetune":
        return common + [f"model.init={spec['plip']}", "data.dataset=synth-pedes", f"data.root={spec['synth']}",
                         "data.image_size=[64,32]", "train.batch_size=4", "train.epochs=1", "train.max_steps=2"]
    if task in ("bot", "mgn"):
        return common + [f"model.name={spec['plip']}", f"data.root={spec['market']}", "data.image_size=[64,32]",
                         "train.batch_size=8", "train.epochs=1", "train.max_steps=2"]
    if task == "par":  # two epochs of one step: the EMA and the plateau schedule see two evaluations
        return [*common[:-3], "eval.every_epochs=1", f"output_dir={out}/{recipe}", "train.seed=1",
                f"model.name={spec['plip']}", f"data.root={spec['pa100k']}", "data.image_size=[64,32]",
                "train.batch_size=4", "train.epochs=2", "eval.batch_size=8"]
    raise KeyError(f"no tiny overrides for recipe '{recipe}': add them to tests/helpers/ddp_recipes.py")


def quiet(module: nn.Module) -> nn.Module:
    """BatchNorm and dropout in eval mode: per-sample computations, so a batch split over ranks
    is the same computation as the whole batch (what SyncBatchNorm gives on GPUs)."""
    for m in module.modules():
        # BERT's attention applies its dropout inside scaled_dot_product_attention when the
        # attention module itself is training, not through an nn.Dropout
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) or "Attention" in type(m).__name__:
            m.eval()
    return module


def one_batch(task, cfg, n: int, rank_seed: int = 0):
    from plip.training.sampler import IdentityBatchSampler, SeededDataset

    data = task.build_train_data(cfg)
    sampler = IdentityBatchSampler(data.labels, n, cfg.sampler.num_instances, seed=rank_seed,
                                   num_samples=len(data.dataset))
    indices = next(iter(sampler))
    seeded = SeededDataset(data.dataset)
    collate = data.collate_fn or torch.utils.data.default_collate
    return collate([seeded[i] for i in indices])


def half(batch, part: int, n: int):
    return {k: v[part * n:(part + 1) * n] for k, v in batch.items()}


def ungradded(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max(float((a[k] - b[k]).abs().max() / max(1.0, float(b[k].abs().max()))) for k in a)


def step_of(task, model, batch, gather):
    from plip.training.task import StepContext

    ctx = StepContext(epoch=0, epochs=1, step=0, micro_step=0, epoch_progress=0.0, rank=dist.get_rank(),
                      world_size=dist.get_world_size(), device=torch.device("cpu"), cfg=None)  # type: ignore[arg-type]
    if gather is None:
        ctx.gather = lambda t: t  # type: ignore[method-assign]
    return task.training_step(model, batch, ctx)


def equivalence(task_name: str, recipe: str, extra: list[str], spec: dict, out: str) -> dict:
    """Loss and gradients of a DDP step on two halves vs one process on the whole batch."""
    from torch.nn.parallel import DistributedDataParallel

    from plip.training import get_task, load_config
    from plip.training.distributed import all_reduce_mean, gather_with_grad

    task = get_task(task_name)
    cfg = load_config(task.config_class, recipe, tiny_overrides(recipe, spec, out) + extra)
    torch.manual_seed(0)
    model = quiet(task.build_model(cfg))
    b = cfg.train.batch_size
    batch = one_batch(task, cfg, 2 * b)
    gathered = not any(e.endswith("gather=false") for e in extra)
    rank = dist.get_rank()

    ref = copy.deepcopy(model)
    if gathered:  # oracle: one process, the whole batch
        ref_out = step_of(task, ref, batch, None)
        ref_out["loss"].backward()
        ref_loss, ref_grads = float(ref_out["loss"].detach()), grads(ref)
    else:  # oracle: the official per-GPU loss on each half, DDP's mean of the gradients
        parts = []
        for part in range(2):
            r = copy.deepcopy(model)
            o = step_of(task, r, half(batch, part, b), None)
            o["loss"].backward()
            parts.append((float(o["loss"].detach()), grads(r)))
        ref_loss = parts[rank][0]
        ref_grads = {k: (parts[0][1][k] + parts[1][1][k]) / 2 for k in parts[0][1]}

    ddp = DistributedDataParallel(model)
    out_d = step_of(task, ddp, half(batch, rank, b), gather_with_grad)
    out_d["loss"].backward()
    loss = float(all_reduce_mean(out_d["loss"].detach())) if gathered else float(out_d["loss"].detach())
    return {"loss": loss, "reference_loss": ref_loss, "grad_max_rel_diff": max_diff(grads(model), ref_grads)}


def main() -> int:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    spec = json.load(open(spec_path))
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    from plip.training import get_task, list_tasks, load_config, train
    from plip.training.config import list_recipes

    rank = dist.get_rank()
    report: dict = {"tasks": list_tasks(), "recipes": {}, "equivalence": {}}
    out = spec["out"]
    try:
        for recipe in list_recipes():
            task_name = recipe.split("_")[0]
            overrides = tiny_overrides(recipe, spec, out)
            task = get_task(task_name)
            cfg = load_config(task.config_class, recipe, overrides)
            # every trainable parameter gets a gradient (one step, one process)
            torch.manual_seed(0)
            probe = task.build_model(cfg)
            probe_out = step_of(task, probe, one_batch(task, cfg, cfg.train.batch_size), None)
            probe_out["loss"].backward()
            missing = ungradded(probe)
            result = train(get_task(task_name), cfg, task_name=task_name)
            report["recipes"][recipe] = {"steps": result.global_step, "no_grad": missing,
                                         "export": str(result.export_dir) if result.export_dir else None}
        cases = {
            "finetune_gathered": ("finetune", "finetune_cmpmc", []),
            "finetune_per_gpu": ("finetune", "finetune_cmpmc", ["model.cmpm_gather=false"]),
            "bot_gathered": ("bot", "bot_market1501", []),
            "mgn_gathered": ("mgn", "mgn_market1501", []),
        }
        for name, (task_name, recipe, extra) in cases.items():
            report["equivalence"][name] = equivalence(task_name, recipe, extra, spec, out + "/eq")
    except Exception:  # reported to the test, which shows it
        report["error"] = traceback.format_exc()
    reports = [None] * dist.get_world_size()
    dist.all_gather_object(reports, report)
    if rank == 0:
        with open(out_path, "w") as fh:
            json.dump(reports, fh, indent=1)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
