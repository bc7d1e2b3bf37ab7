"""Training speed of PLIP pre-training and CMPM/C fine-tuning at full plip-rn50 size.

One run measures, on the current CPU (default threads), fp32, optimizer Adan as in the
shipped recipes (``pretrain_paper``, ``finetune_cmpmc``), a small batch:

* samples/s of one training step (forward + backward + optimizer step) of
  - pre-training, IVLC + TIC + IAP, with the paper's freezing (BERT embeddings and layers
    0-7 frozen);
  - the same pre-training step with everything trainable (``freeze_text_layers=0``,
    ``freeze_text_embeddings=false``): the baseline that shows what freezing saves;
  - fine-tuning, CMPM + CMPC, everything trainable;
  the two pre-training models step in turn (interleaved), so machine load hits both alike;
* the data-loading time of a batch (the real :class:`~plip.training.text_data.CaptionedImages`
  through the engine's sampler and per-sample seeding: JPEG decode, resize, normalise,
  flip, attribute masking, collate) over a synthetic dataset written to a temporary folder,
  and its share of a serial (``num_workers=0``) step. Captions are tokenised once when the
  dataset is built; that cost is reported per caption;
* that frozen layers cost no backward compute, structurally: the autograd graph of the
  pre-training loss holds no backward node that writes (``AccumulateGrad``) or reads (a
  saved weight) a frozen parameter, the frozen modules' outputs carry no autograd history,
  and frozen parameters have no ``.grad`` after ``backward``. The same check on the
  all-trainable model must find those parameters (so the check can fail).

Usage (6-9 minutes on a busy 2-core machine with the defaults; about 12 GB of RAM, since
both pre-training models and their Adan states are held at once)::

    PYTHONPATH=. python benchmarks/bench_training.py [--batch 4] [--steps 2] [--warmup 1]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from plip.training import StepContext, load_config
from plip.training.optim import build_optimizer
from plip.training.tasks.finetune import FinetuneConfig, FinetuneTask
from plip.training.tasks.pretrain import PretrainConfig, PretrainTask
from plip.training.sampler import IdentityBatchSampler, SeededDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helper, not in the wheel
from helpers.autograd_graph import backward_parameter_use, frozen_parameter_names  # noqa: E402

PRETRAIN_FROZEN = "pre-train, paper freezing"
PRETRAIN_ALL = "pre-train, all trainable"
FINETUNE = "fine-tune CMPM+CMPC"


@dataclass
class Timings:
    """Per-step phase times (seconds) of the measured steps."""

    forward: list[float] = field(default_factory=list)
    backward: list[float] = field(default_factory=list)
    optimizer: list[float] = field(default_factory=list)

    def median(self, phase: str) -> float:
        return statistics.median(getattr(self, phase))

    @property
    def step(self) -> float:
        return statistics.median(f + b + o for f, b, o in zip(self.forward, self.backward, self.optimizer))


@dataclass
class DataStats:
    """Data-loading cost of the batches a run uses (seconds per batch)."""

    batches: list[dict[str, torch.Tensor]]
    main_thread: list[float]  # in the training process, its default intra-op threads
    one_thread: list[float]  # with 1 intra-op thread, as in a DataLoader worker
    tokenize_per_caption: float

    @staticmethod
    def median(times: list[float]) -> float:
        return statistics.median(times)


class Stepper:
    """A task's model and Adan optimizer, stepped the way the engine does (fp32, no clipping)."""

    def __init__(self, task: Any, cfg: Any) -> None:
        torch.manual_seed(0)
        self.task, self.cfg = task, cfg
        self.model: nn.Module = task.build_model(cfg)
        self.optimizer = build_optimizer(task.param_groups(self.model, cfg), cfg.optim)
        self.timings = Timings()
        self.ctx = StepContext(epoch=0, epochs=cfg.train.epochs, step=0, micro_step=0, epoch_progress=0.0,
                               rank=0, world_size=1, device=torch.device("cpu"), cfg=cfg)

    def trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def step(self, batch: dict[str, torch.Tensor], record: bool) -> None:
        t0 = time.perf_counter()
        loss = self.task.training_step(self.model, batch, self.ctx)["loss"]
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if record:
            self.timings.forward.append(t1 - t0)
            self.timings.backward.append(t2 - t1)
            self.timings.optimizer.append(t3 - t2)


# ------------------------------------------------------------------------------ data
def load_batches(task: Any, cfg: Any, count: int) -> DataStats:
    """Build the task's dataset and fetch ``count`` batches as the engine does.

    Each batch is fetched twice from the same ``(index, seed)`` pairs (so the same pixels
    and masks): with the process's intra-op threads (``num_workers=0``) and with one thread,
    which is what PyTorch gives a DataLoader worker.
    """
    data = task.build_train_data(cfg)
    seeded = SeededDataset(data.dataset)
    sampler = IdentityBatchSampler(data.labels, cfg.train.batch_size, cfg.sampler.num_instances,
                                   seed=cfg.train.seed, drop_last=True)
    threads = torch.get_num_threads()
    stats = DataStats([], [], [], _tokenize_per_caption(cfg))
    epoch = 0
    while len(stats.batches) < count:
        sampler.set_epoch(epoch)
        seeded.set_epoch(epoch)
        for indices in sampler:
            for n_threads, times in ((threads, stats.main_thread), (1, stats.one_thread)):
                torch.set_num_threads(n_threads)
                t0 = time.perf_counter()
                batch = data.collate_fn([seeded[item] for item in indices])
                times.append(time.perf_counter() - t0)
            torch.set_num_threads(threads)
            stats.batches.append(batch)
            if len(stats.batches) == count:
                break
        epoch += 1
    return stats


def _tokenize_per_caption(cfg: Any) -> float:
    """Seconds per caption of the tokenisation the dataset does once, when it is built."""
    from plip.tokenizer import PLIPTokenizer
    from plip.training.tasks._plip import load_text_reid_split

    split = load_text_reid_split(cfg.data.dataset, cfg.data.root, cfg.data.split)
    captions = [c for sample in split.samples for c in sample.captions]
    tokenizer = PLIPTokenizer(max_length=64)
    tokenizer.encode(captions[:8])  # warm-up
    t0 = time.perf_counter()
    tokenizer.encode(captions)
    return (time.perf_counter() - t0) / len(captions)


# ------------------------------------------------------------------------------ structure
def frozen_text_modules(model: nn.Module, layers: int) -> list[tuple[str, nn.Module]]:
    bert = model.model.text.encoder
    return [("embeddings", bert.embeddings)] + [(f"layer.{i}", bert.encoder.layer[i]) for i in range(layers)]


def first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    for value in output.values() if isinstance(output, dict) else output:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"no tensor in module output of type {type(output).__name__}")


class StructureCheck:
    """Records what the autograd graph of one pre-training step does with frozen modules."""

    def __init__(self, stepper: Stepper, layers: int) -> None:
        self.model = stepper.model
        self.names = [name for name, _ in frozen_text_modules(self.model, layers)]
        self.frozen_params = frozen_parameter_names(self.model)
        prefix = {id(module): name for name, module in self.model.named_modules()}
        self.module_params = {
            f"{prefix[id(module)]}.{p}"
            for _, module in frozen_text_modules(self.model, layers) for p, _ in module.named_parameters()
        }
        self.outputs_with_history: list[str] = []
        self.calls = 0
        self.use = None
        self._hooks = [module.register_forward_hook(self._hook(name))
                       for name, module in frozen_text_modules(self.model, layers)]

    def _hook(self, name: str):
        def hook(module, args, output):
            self.calls += 1
            out = first_tensor(output)
            if out.requires_grad or out.grad_fn is not None:
                self.outputs_with_history.append(name)
        return hook

    def inspect(self, loss: torch.Tensor) -> None:
        self.use = backward_parameter_use(loss, self.model)
        for h in self._hooks:
            h.remove()

    def grads_after_backward(self) -> int:
        """How many frozen-module parameters hold a ``.grad`` (call between backward and zero_grad)."""
        named = dict(self.model.named_parameters())
        return sum(named[n].grad is not None for n in self.module_params)


def run_structure_step(stepper: Stepper, batch, layers: int) -> tuple[StructureCheck, int]:
    """One unrecorded step with the graph walked before backward and grads checked after."""
    check = StructureCheck(stepper, layers)
    loss = stepper.task.training_step(stepper.model, batch, stepper.ctx)["loss"]
    check.inspect(loss)
    loss.backward()
    with_grad = check.grads_after_backward()
    stepper.optimizer.step()
    stepper.optimizer.zero_grad(set_to_none=True)
    return check, with_grad


# ------------------------------------------------------------------------------ main
def fmt_m(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="samples per step (default 4)")
    parser.add_argument("--steps", type=int, default=2, help="measured steps per configuration (default 2)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured steps first (default 1; the first one also runs the structural check)")
    parser.add_argument("--identities", type=int, default=10, help="synthetic identities (default 10)")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.batch < 2 or args.batch % 2:
        parser.error("--warmup and --steps must be >= 1, --batch even and >= 2")
    n_batches = args.warmup + args.steps
    layers = 8
    began = time.perf_counter()

    from plip.data.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = f"{tmp}/persons"
        generate_dataset(root, identities=args.identities, images_per_id=4, seed=0, workers=0, progress=False)
        common = [f"data.root={root}", f"train.batch_size={args.batch}", "data.num_workers=0", "train.amp=none"]
        pre_frozen = load_config(PretrainConfig, "pretrain_paper", common + ["sampler.num_instances=2"])
        pre_all = load_config(PretrainConfig, "pretrain_paper", common + [
            "sampler.num_instances=2", "model.freeze_text_layers=0", "model.freeze_text_embeddings=false"])
        fine = load_config(FinetuneConfig, "finetune_cmpmc", common + [
            "model.init=null", "data.dataset=cuhk-pedes", "sampler.num_instances=1"])
        assert pre_frozen.model.freeze_text_layers == layers and pre_frozen.model.freeze_text_embeddings

        pre_data = load_batches(PretrainTask(), pre_frozen, n_batches)
        fine_task = FinetuneTask()
        fine_data = load_batches(fine_task, fine, n_batches)

    # Pre-training, frozen vs all trainable, stepped in turn on the same batches.
    frozen, full = Stepper(PretrainTask(), pre_frozen), Stepper(PretrainTask(), pre_all)
    frozen_check, frozen_grads = run_structure_step(frozen, pre_data.batches[0], layers)
    full_check, full_grads = run_structure_step(full, pre_data.batches[0], layers)
    for i, batch in enumerate(pre_data.batches[1:], start=1):
        for stepper in (frozen, full) if i % 2 else (full, frozen):  # alternate who goes first
            stepper.step(batch, record=i >= args.warmup)
    rows = [(PRETRAIN_FROZEN, frozen, pre_data), (PRETRAIN_ALL, full, pre_data)]
    params = {PRETRAIN_FROZEN: (frozen.trainable(), sum(p.numel() for p in frozen.model.parameters())),
              PRETRAIN_ALL: (full.trainable(), sum(p.numel() for p in full.model.parameters()))}
    timings = {PRETRAIN_FROZEN: frozen.timings, PRETRAIN_ALL: full.timings}
    del frozen, full
    gc.collect()

    tuner = Stepper(fine_task, fine)
    for i, batch in enumerate(fine_data.batches):
        tuner.step(batch, i >= args.warmup)
    params[FINETUNE] = (tuner.trainable(), sum(p.numel() for p in tuner.model.parameters()))
    timings[FINETUNE] = tuner.timings
    rows.append((FINETUNE, tuner, fine_data))
    del tuner

    # ---- report
    print(f"plip-rn50 training step on CPU ({torch.get_num_threads()} threads), batch {args.batch}, fp32, Adan; "
          f"median of {args.steps} steps after {args.warmup} warm-up; 256x128 images")
    header = (f"{'step':<28}{'trainable':>10}{'fwd s':>7}{'bwd s':>7}{'optim s':>8}{'step s':>7}"
              f"{'samples/s':>10}{'data s (share)':>17}{'1-thread data s (share)':>25}")
    print(header)
    print("-" * len(header))
    for name, _, data in rows:
        t = timings[name]
        step = t.step
        cells = []
        for times in (data.main_thread, data.one_thread):
            d = data.median(times)
            cells.append(f"{d:.3f} ({d / (d + step):.1%})")
        print(f"{name:<28}{fmt_m(params[name][0]):>10}{t.median('forward'):>7.2f}{t.median('backward'):>7.2f}"
              f"{t.median('optimizer'):>8.2f}{step:>7.2f}{args.batch / step:>10.3f}{cells[0]:>17}{cells[1]:>25}")
    print("data s: one batch (JPEG decode, resize, normalise, flip, attribute masking for pre-training, "
          "collate) fetched\n  serially in the training process (num_workers=0), and with 1 intra-op thread as in a "
          "DataLoader worker;\n  share = data / (data + step). Captions are tokenised once when the dataset is "
          f"built: {pre_data.tokenize_per_caption * 1e3:.3f} ms/caption.")

    f, a = timings[PRETRAIN_FROZEN], timings[PRETRAIN_ALL]
    print("\npre-training, paper freezing / all trainable (same run, interleaved steps, same batches):")
    for phase in ("forward", "backward", "optimizer"):
        fp, ap = f.median(phase), a.median(phase)
        print(f"  {phase:<10} {fp:7.2f} s / {ap:7.2f} s = x{fp / ap:.2f}")
    print(f"  {'step':<10} {f.step:7.2f} s / {a.step:7.2f} s = x{f.step / a.step:.2f}"
          f"   (samples/s x{a.step / f.step:.2f})")
    print(f"  backward nodes in the loss graph: {frozen_check.use.nodes} / {full_check.use.nodes}"
          f" = x{frozen_check.use.nodes / full_check.use.nodes:.2f}")

    frozen_touched = frozen_check.use.touched & frozen_check.frozen_params
    full_touched = full_check.use.touched & full_check.module_params
    n_module_params = len(frozen_check.module_params)
    ok = (
        frozen_check.module_params <= frozen_check.frozen_params
        and not frozen_touched
        and not frozen_check.outputs_with_history
        and frozen_grads == 0
        and frozen_check.calls == 2 * len(frozen_check.names)
        and full_touched == full_check.module_params  # the check sees them when they are trainable
    )
    print(f"\nstructural check: BERT embeddings + layers 0-{layers - 1} "
          f"({n_module_params} tensors, {fmt_m(params[PRETRAIN_ALL][0] - params[PRETRAIN_FROZEN][0])} values)")
    print(f"  paper freezing: frozen parameters written or read by backward nodes: {len(frozen_touched)}; "
          f"frozen-module outputs with autograd history: {len(frozen_check.outputs_with_history)} of "
          f"{frozen_check.calls} calls; frozen parameters with .grad after backward: {frozen_grads}")
    print(f"  all trainable (control): those parameters reached by backward: {len(full_touched)} of "
          f"{n_module_params}; with .grad: {full_grads}")
    print(f"  => {'PASS' if ok else 'FAIL'}: frozen layers {'cost no' if ok else 'DO cost'} backward compute")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
