"""The training loop shared by every task.

:func:`train` runs a :class:`~plip.training.task.Task` with a :class:`RunConfig` on one
CPU, one GPU or many processes under ``torchrun`` (DDP). It handles: the P x K identity
sampler, DDP (``find_unused_parameters`` configurable, SyncBatchNorm on GPUs), automatic
mixed precision (bf16 autocast; fp16 autocast with a gradient scaler on CUDA), gradient
accumulation (``no_sync`` on all but the last micro-batch), gradient clipping, the
learning-rate schedule, checkpoints (every N steps and/or epochs, keep-last-N, best),
``metrics.jsonl`` / TensorBoard, a progress bar on rank 0, evaluation every N epochs
and the final export.

Resuming (``resume="latest"`` or a path) restores the model, optimizer, scheduler,
scaler, progress, sampler position and every rank's RNG states, and the data order and
augmentations are functions of (seed, epoch, position): a run killed at any moment and
resumed computes the same steps as one that was never interrupted.

Equivalence of one process and N processes: with the same global batch
(``train.batch_size * world_size * train.grad_accum`` samples per optimizer step), the
sampler gives every optimizer step the same samples, in the same (gathered) order, and
:func:`~plip.training.distributed.gather_with_grad` plus DDP's gradient averaging give the
gradient of the whole batch. Updates then match up to float rounding when the loss is
either a mean over samples or a function of the gathered batch. They differ where the
computation depends on the per-rank split: BatchNorm statistics (per rank unless
SyncBatchNorm), dropout streams (per-rank seeds), and per-rank losses that are not means
over samples. Gradient accumulation is equivalent to a larger batch only for
per-sample-mean losses (a loss over a gathered micro-batch sees only that micro-batch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..version import __version__
from ..errors import CheckpointError, ConfigError, DataError
from .checkpoint import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    resolve_resume,
    restore_rng_state,
)
from .config import RunConfig, config_to_dict, save_config
from .distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    init_distributed,
    seed_everything,
)
from .metrics import MetricsLogger
from .optim import build_optimizer, build_scheduler, scaled_lr
from .sampler import IdentityBatchSampler, SeededDataset, sample_seed
from .task import StepContext, Task, unwrap_model

__all__ = ["train", "TrainResult", "Trainer", "move_to_device"]

log = logging.getLogger("plip.training")


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    output_dir: Path
    epoch: int
    global_step: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_metric: float | None
    export_dir: Path | None
    last_eval: dict[str, float] | None = None


@dataclass
class _Progress:
    epoch: int = 0  # epoch in progress (or next to start)
    batch: int = 0  # rank-batches of that epoch already used
    step: int = 0  # optimizer steps done
    best: float | None = None
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_count: int = 0
    interval_sums: dict[str, float] = field(default_factory=dict)
    interval_count: int = 0


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to ``device``; mappings become plain dicts."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict) or hasattr(batch, "items") and hasattr(batch, "keys"):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def _worker_seed(seed: int, epoch: int, rank: int) -> int:
    return sample_seed(seed, epoch, -(rank + 1))  # negative positions: never a sample's seed


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id (base_seed from the loader's
    # generator, itself seeded from (seed, epoch, rank)); derive NumPy's and Python's from it.
    import random

    import numpy as np

    s = torch.initial_seed()
    np.random.seed(s % 2**32)
    random.seed(s)


@contextlib.contextmanager
def _isolated_rng(device: torch.device):
    """Run a block without disturbing any global generator (evaluation)."""
    state = capture_rng_state(device)
    try:
        yield
    finally:
        restore_rng_state(state, device)


class Trainer:
    """One training run; see :func:`train`."""

    def __init__(self, task: Task, cfg: RunConfig, *, task_name: str | None = None) -> None:
        self.task, self.cfg = task, cfg
        self.task_name = task_name or type(task).__name__
        self.out = Path(cfg.output_dir)
        self._extra: dict[str, torch.optim.Optimizer] = {}
        self._ema: ModelEMA | None = None

    # ------------------------------------------------------------------ setup
    def _check_environment(self, info: DistInfo) -> None:
        """Configuration problems that depend on the machine, raised before data loads."""
        t = self.cfg.train
        if t.amp == "fp16" and info.device.type != "cuda":
            raise ConfigError("config key 'train.amp' is 'fp16', which needs CUDA; use 'bf16' or 'none' on CPU")
        if t.amp == "bf16" and info.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("config key 'train.amp' is 'bf16' but this GPU does not support bfloat16; use 'fp16'")
        if t.sync_bn and info.world_size > 1 and info.device.type != "cuda":
            raise ConfigError("config key 'train.sync_bn' needs CUDA devices (SyncBatchNorm does not run on CPU)")
        if self.cfg.logging.tensorboard:
            try:
                import torch.utils.tensorboard  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "config key 'logging.tensorboard' is true but the tensorboard package is not "
                    "installed (pip install 'plip-person[tensorboard]')"
                ) from None

    def _amp_dtype(self) -> torch.dtype | None:
        return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.cfg.train.amp]

    # ------------------------------------------------------------------ checkpoints
    def _state(self, model: nn.Module, optimizer, scheduler, scaler, sampler, p: _Progress,
               rng: list[dict[str, Any]], info: DistInfo) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": FORMAT_VERSION,
            "plip_version": str(__version__),
            "torch_version": str(torch.__version__),
            "task": self.task_name,
            "config": config_to_dict(self.cfg),
            "model": unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "extra_optimizers": {k: o.state_dict() for k, o in self._extra.items()},
            "ema": self._ema.state_dict() if self._ema is not None else None,
            "task_state": self.task.state_dict(),
            "progress": _progress_state(p),
            "sampler": sampler.state_dict(p.batch),
            "world_size": info.world_size,
            "global_batch": sampler.global_batch,
            "rng": rng,
        }

    def _save(self, manager: CheckpointManager, info: DistInfo, *, periodic: bool, best: bool,
              **parts: Any) -> Path | None:
        rng = all_gather_objects(capture_rng_state(info.device))  # collective: every rank
        path = None
        if info.is_main and (periodic or best):
            state = self._state(rng=rng, info=info, **parts)
            if best:  # first: a periodic checkpoint records the new best value
                manager.save_best(state)
            if periodic:
                path = manager.save(state, parts["p"].step)
        barrier()
        return path

    def _resume(self, path: Path, info: DistInfo, model, optimizer, scheduler, scaler,
                sampler: IdentityBatchSampler) -> _Progress:
        state = load_checkpoint(path)
        if state.get("task") not in (None, self.task_name):
            raise CheckpointError(
                f"checkpoint '{path}' was written by task '{state.get('task')}', not '{self.task_name}'"
            )
        prog = _Progress(**state["progress"])
        if prog.batch and state.get("global_batch") != sampler.global_batch:
            raise CheckpointError(
                f"checkpoint '{path}' stopped mid-epoch with a global batch of {state.get('global_batch')} "
                f"samples; this run has {sampler.global_batch} (train.batch_size x world size). Keep the "
                "global batch to resume mid-epoch"
            )
        try:
            unwrap_model(model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint '{path}' does not match this model/optimizer: {err}") from None
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        extra = state.get("extra_optimizers") or {}
        if set(extra) != set(self._extra):
            raise CheckpointError(f"checkpoint '{path}' has extra optimizers {sorted(extra)}, this run "
                                  f"{sorted(self._extra)}")
        for name, opt in self._extra.items():
            opt.load_state_dict(extra[name])
        if self._ema is not None:
            if state.get("ema") is None:
                raise CheckpointError(f"checkpoint '{path}' has no EMA weights but train.ema_decay is set")
            self._ema.load_state_dict(state["ema"])
        self.task.load_state_dict(state.get("task_state") or {})
        old_cfg, new_cfg = state.get("config") or {}, config_to_dict(self.cfg)
        changed = _diff_keys(old_cfg, new_cfg)
        if changed and info.is_main:
            log.warning("resuming with a configuration that differs from the checkpoint's in: %s",
                        ", ".join(changed))
        rng = state["rng"]
        if len(rng) != info.world_size:
            log.warning("checkpoint has RNG states of %d ranks, this run has %d: random streams "
                        "will not continue exactly", len(rng), info.world_size)
        if info.rank < len(rng):
            restore_rng_state(rng[info.rank], info.device)
        else:
            seed_everything(self.cfg.train.seed + info.rank)
        if info.is_main:
            log.info("resumed from %s: epoch %d, batch %d, step %d", path, prog.epoch, prog.batch, prog.step)
        return prog

    # ------------------------------------------------------------------ run
    def fit(self, resume: str | None = None) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        info = init_distributed(t.device, t.dist_timeout_minutes)
        metrics: MetricsLogger | None = None
        try:
            self._check_environment(info)
            manager = CheckpointManager(self.out / "checkpoints", cfg.checkpoint.keep_last)
            if info.is_main:
                for stale in manager.clean_temporary():
                    log.info("removed the half-written checkpoint %s", stale)
            barrier()
            resume_path = resolve_resume(resume, manager.directory)
            if resume is None and manager.latest() is not None:
                raise ConfigError(
                    f"config key 'output_dir' ('{self.out}') already holds checkpoints "
                    f"(latest: {manager.latest().name}); pass --resume latest to continue that run "
                    "or choose another output_dir"
                )
            if resume == "latest" and resume_path is None and info.is_main:
                log.info("no checkpoint in %s yet: starting from scratch", manager.directory)
            if t.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
            elif info.device.type == "cuda":
                torch.backends.cudnn.benchmark = True

            self.task.check_inputs(cfg)
            # The model is initialised with the same seed on every rank.
            seed_everything(t.seed)
            model = self.task.build_model(cfg).to(info.device)
            if t.sync_bn and info.world_size > 1:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

            data = self.task.build_train_data(cfg)
            num_samples = len(data.dataset)  # type: ignore[arg-type]
            if data.labels is not None and len(data.labels) != num_samples:
                raise DataError(
                    f"task '{self.task_name}' gave {len(data.labels)} labels for {num_samples} samples"
                )
            sampler = IdentityBatchSampler(
                data.labels, t.batch_size, cfg.sampler.num_instances, num_replicas=info.world_size,
                rank=info.rank, seed=t.seed, drop_last=cfg.sampler.drop_last, grad_accum=t.grad_accum,
                num_samples=num_samples,
            )
            batches_per_epoch = sampler.batches_per_epoch()
            steps_per_epoch = sampler.steps_per_epoch()
            global_batch = sampler.global_batch
            lr = scaled_lr(cfg.optim.lr, cfg.optim.reference_batch, global_batch)

            optimizer = build_optimizer(self.task.param_groups(model, cfg), cfg.optim, lr)
            self._extra = dict(self.task.extra_optimizers(model, cfg))
            _check_disjoint(optimizer, self._extra)
            if t.ema_decay is not None:
                self._ema = ModelEMA(model, t.ema_decay)
            scheduler = build_scheduler(optimizer, cfg.schedule, t.epochs, steps_per_epoch)
            scaler = torch.amp.GradScaler(info.device.type, enabled=t.amp == "fp16")

            prog = _Progress()
            if resume_path is not None:
                prog = self._resume(resume_path, info, model, optimizer, scheduler, scaler, sampler)
            else:
                seed_everything(t.seed + info.rank)  # per-rank training randomness (dropout, ...)

            ddp_model: nn.Module = model
            if info.world_size > 1:
                ddp_model = DistributedDataParallel(
                    model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                    find_unused_parameters=t.find_unused_parameters,
                )

            if info.is_main:
                self.out.mkdir(parents=True, exist_ok=True)
                save_config(cfg, self.out / "config.yaml")
                metrics = MetricsLogger(self.out, jsonl=cfg.logging.jsonl, tensorboard=cfg.logging.tensorboard)
                # Drop records past the checkpoint (or, on a fresh start, an earlier attempt's).
                metrics.truncate_after(prog.step if resume_path is not None else -1)
                log.info("training '%s': %d samples, %d ranks x %d per batch x %d accumulation = "
                         "global batch %d, %d steps/epoch, lr %.3g, output %s", self.task_name,
                         num_samples, info.world_size, t.batch_size, t.grad_accum, global_batch,
                         steps_per_epoch, lr, self.out)
            barrier()

            return self._loop(info, ddp_model, optimizer, scheduler, scaler, sampler, data,
                              manager, prog, metrics, batches_per_epoch)
        finally:
            if metrics is not None:
                metrics.close()
            cleanup_distributed(info)

    def _loop(self, info: DistInfo, model: nn.Module, optimizer, scheduler, scaler,
              sampler: IdentityBatchSampler, data, manager: CheckpointManager, p: _Progress,
              metrics: MetricsLogger | None, batches_per_epoch: int) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        accum, amp_dtype = t.grad_accum, self._amp_dtype()
        seeded = SeededDataset(data.dataset)
        params = [q for g in optimizer.param_groups for q in g["params"]]
        extra = list(self._extra.values())
        is_ddp = isinstance(model, DistributedDataParallel)
        parts = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, sampler=sampler)
        last_ckpt, last_eval, stopped = manager.latest(), None, False
        every_steps = cfg.checkpoint.every_steps
        done = t.max_steps is not None and p.step >= t.max_steps

        while p.epoch < t.epochs and not done:
            epoch = p.epoch
            sampler.set_epoch(epoch, p.batch)
            seeded.set_epoch(epoch)
            loader = DataLoader(
                seeded, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                collate_fn=data.collate_fn, pin_memory=cfg.data.pin_memory and info.device.type == "cuda",
                worker_init_fn=_seed_worker,
                generator=torch.Generator().manual_seed(_worker_seed(t.seed, epoch, info.rank)),
            )
            model.train()
            bar = None
            if info.is_main and cfg.logging.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=batches_per_epoch, initial=p.batch, desc=f"epoch {epoch + 1}/{t.epochs}",
                           dynamic_ncols=True, leave=False)
            epoch_start = tick = interval_start = time.perf_counter()
            data_time = 0.0
            grad_norm: torch.Tensor | None = None
            it = iter(loader)
            while p.batch < batches_per_epoch:
                try:
                    batch = next(it)
                except StopIteration:  # pragma: no cover - the sampler length is exact
                    break
                data_time += time.perf_counter() - tick
                group_start = p.batch - p.batch % accum
                group_len = min(accum, batches_per_epoch - group_start)
                micro = p.batch - group_start
                last_micro = micro == group_len - 1
                batch = move_to_device(batch, info.device)
                ctx = StepContext(epoch=epoch, epochs=t.epochs, step=p.step, micro_step=micro,
                                  epoch_progress=epoch + p.batch / batches_per_epoch, rank=info.rank,
                                  world_size=info.world_size, device=info.device, cfg=cfg)
                sync = model.no_sync() if is_ddp and not last_micro else contextlib.nullcontext()
                with sync:
                    with torch.autocast(info.device.type, dtype=amp_dtype or torch.float32,
                                        enabled=amp_dtype is not None):
                        out = self.task.training_step(model, batch, ctx)
                    if "loss" not in out:
                        raise TypeError(f"task '{self.task_name}' training_step returned no 'loss' "
                                        f"(keys: {', '.join(out)})")
                    scaler.scale(out["loss"].float() / group_len).backward()
                self._accumulate(p, out)
                p.batch += 1
                if bar is not None:
                    bar.update(1)
                if not last_micro:
                    tick = time.perf_counter()
                    continue

                if t.clip_grad_norm is not None:
                    scaler.unscale_(optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, t.clip_grad_norm)
                scaler.step(optimizer)
                for opt in extra:  # own optimizers (e.g. BoT's centres), outside the schedule
                    scaler.step(opt)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                for opt in extra:
                    opt.zero_grad(set_to_none=True)
                if self._ema is not None:
                    self._ema.update(model)
                step_lrs = [g["lr"] for g in optimizer.param_groups]  # the rates this step used
                scheduler.step()
                p.step += 1
                done = t.max_steps is not None and p.step >= t.max_steps

                if p.step % cfg.logging.every_steps == 0:
                    now = time.perf_counter()
                    self._log_step(p, info, optimizer, step_lrs, metrics, bar, grad_norm, data_time,
                                   now - interval_start, epoch, batches_per_epoch)
                    interval_start, data_time = now, 0.0
                at_epoch_end = p.batch >= batches_per_epoch
                if every_steps and p.step % every_steps == 0 and not at_epoch_end:
                    last_ckpt = self._save(manager, info, periodic=True, best=False, p=p, **parts)
                if done and not at_epoch_end:
                    stopped = True
                    break
                tick = time.perf_counter()
            if bar is not None:
                bar.close()
            del it, loader
            if stopped:  # max_steps reached mid-epoch
                last_ckpt = self._save(manager, info, periodic=True, best=False, p=p, **parts) or last_ckpt
                break

            # End of the epoch.
            epoch_means = self._reduce(p.epoch_sums, p.epoch_count)
            if info.is_main and metrics is not None:
                metrics.log({"kind": "epoch", "epoch": epoch, "step": p.step, **epoch_means,
                             "epoch_s": time.perf_counter() - epoch_start, "time": time.time()})
            p.epoch, p.batch, p.epoch_sums, p.epoch_count = epoch + 1, 0, {}, 0
            last = p.epoch >= t.epochs or done
            ev = cfg.eval.every_epochs
            improved = False
            if ev and (p.epoch % ev == 0 or last):
                last_eval, improved = self._evaluate(model, info, p, metrics, epoch)
                self._report_plateau(scheduler, last_eval, info)
            periodic = p.epoch % cfg.checkpoint.every_epochs == 0 or last or \
                bool(every_steps and p.step % every_steps == 0)
            if periodic or improved:
                path = self._save(manager, info, periodic=periodic, best=improved, p=p, **parts)
                last_ckpt = path or last_ckpt

        if stopped and cfg.eval.every_epochs:  # final evaluation after a mid-epoch stop
            last_eval, _ = self._evaluate(model, info, p, metrics, p.epoch)
        export_dir = None
        if info.is_main:
            export_dir = self.out / "model"
            self.task.export(self._eval_model(model), str(export_dir))
            if not export_dir.exists():
                export_dir = None
        barrier()
        best_path = manager.best_path if manager.best_path.exists() else None
        return TrainResult(output_dir=self.out, epoch=p.epoch, global_step=p.step,
                           last_checkpoint=last_ckpt if info.is_main else None, best_checkpoint=best_path,
                           best_metric=p.best, export_dir=export_dir, last_eval=last_eval)

    # ------------------------------------------------------------------ helpers
    def _eval_model(self, model: nn.Module) -> nn.Module:
        """What is evaluated and exported: the EMA weights when ``train.ema_decay`` is set."""
        inner = unwrap_model(model)
        return self._ema.module_like(inner) if self._ema is not None else inner

    def _report_plateau(self, scheduler, results: dict[str, float] | None, info: DistInfo) -> None:
        """Feed the ``plateau`` decay the watched evaluation value (rank 0's, on every rank)."""
        if self.cfg.schedule.name != "plateau":
            return
        key = self.cfg.schedule.plateau_metric
        value = None if results is None else results.get(key)
        value = all_gather_objects(value)[0]
        if value is None:
            raise ConfigError(f"config key 'schedule.plateau_metric' is '{key}', which the evaluation of "
                              f"task '{self.task_name}' does not return")
        if scheduler.report(float(value)) and info.is_main:
            log.info("%s has not improved for %d evaluations: learning rate x%g", key,
                     self.cfg.schedule.plateau_patience + 1, self.cfg.schedule.gamma)

    @staticmethod
    def _accumulate(p: _Progress, out: dict[str, Any]) -> None:
        # Sums stay on the device (no host sync per step); float64 so that a resume, which
        # stores them as Python floats, continues with the very same values.
        for name, value in out.items():
            v = value.detach().to(torch.float64) if isinstance(value, torch.Tensor) else float(value)
            p.epoch_sums[name] = p.epoch_sums.get(name, 0.0) + v
            p.interval_sums[name] = p.interval_sums.get(name, 0.0) + v
        p.epoch_count += 1
        p.interval_count += 1

    @staticmethod
    def _reduce(sums: dict[str, Any], count: int) -> dict[str, float]:
        """Means over micro-batches and ranks (every rank holds the same keys)."""
        if not sums:
            return {}
        names = sorted(sums)
        dev = _reduce_device()
        local = torch.stack([torch.as_tensor(sums[n], dtype=torch.float64).to(dev) for n in names])
        mean = all_reduce_mean(local / max(count, 1))
        return {n: float(v) for n, v in zip(names, mean.cpu().tolist())}

    def _log_step(self, p: _Progress, info: DistInfo, optimizer, lrs: list[float], metrics, bar, grad_norm,
                  data_time: float, interval_time: float, epoch: int, batches_per_epoch: int) -> None:
        means = self._reduce(p.interval_sums, p.interval_count)
        n_batches = p.interval_count
        p.interval_sums, p.interval_count = {}, 0
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad and self.cfg.train.amp != "fp16":  # fp16: the scaler skips such steps itself
            raise FloatingPointError(
                f"non-finite {', '.join(bad)} at step {p.step} (epoch {epoch}); lower optim.lr, "
                "set train.clip_grad_norm, or resume from an earlier checkpoint"
            )
        if not info.is_main:
            return
        rec: dict[str, Any] = {"kind": "step", "epoch": epoch, "step": p.step,
                               "epoch_progress": epoch + p.batch / batches_per_epoch}
        groups = optimizer.param_groups
        rec["lr"] = lrs[0]
        if len(groups) > 1:
            for i, (g, lr) in enumerate(zip(groups, lrs)):
                rec[f"lr/{g.get('name', i)}"] = lr
        rec.update(means)
        if grad_norm is not None:
            rec["grad_norm"] = float(grad_norm)
        samples = n_batches * self.cfg.train.batch_size * info.world_size
        rec["samples_per_s"] = samples / interval_time if interval_time > 0 else None
        rec["data_share"] = min(data_time / interval_time, 1.0) if interval_time > 0 else None
        rec["time"] = time.time()
        if metrics is not None:
            metrics.log(rec)
        if bar is not None:
            bar.set_postfix(loss=f"{means.get('loss', float('nan')):.4g}", lr=f"{rec['lr']:.3g}")

    def _evaluate(self, model: nn.Module, info: DistInfo, p: _Progress, metrics, epoch: int
                  ) -> tuple[dict[str, float] | None, bool]:
        """Run the task's evaluation on rank 0; return the results and whether they improved."""
        results, improved = None, False
        if info.is_main:
            inner = self._eval_model(model)
            inner.eval()
            with _isolated_rng(info.device), torch.no_grad():
                results = self.task.evaluate(inner, self.cfg)
            inner.train()
            if results is not None:
                key, mode = self.cfg.eval.metric, self.cfg.eval.mode
                if key not in results:
                    log.warning("eval.metric '%s' is not among the evaluation results (%s): no best "
                                "checkpoint is kept", key, ", ".join(results))
                else:
                    value = float(results[key])
                    improved = p.best is None or (value > p.best if mode == "max" else value < p.best)
                    if improved:
                        p.best = value
                if metrics is not None:
                    metrics.log({"kind": "eval", "epoch": epoch, "step": p.step,
                                 **{k: float(v) for k, v in results.items()}, "best": improved,
                                 "time": time.time()})
                log.info("evaluation after epoch %d: %s", epoch + 1,
                         ", ".join(f"{k} {float(v):.4g}" for k, v in results.items()))
        improved = bool(all_gather_objects(improved)[0])
        p.best = all_gather_objects(p.best)[0]
        return results, improved


class ModelEMA:
    """Exponential moving average of a model's state (timm ``ModelEmaV2``'s rule):
    ``ema = decay * ema + (1 - decay) * value`` for every floating-point entry of the
    state dict after each optimizer step; other entries (counters) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in unwrap_model(model).state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in unwrap_model(model).state_dict().items():
            ema = self.state[k]
            if ema.is_floating_point():
                ema.mul_(self.decay).add_(v.detach(), alpha=1.0 - self.decay)
            else:
                ema.copy_(v)

    def module_like(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` holding the averaged weights."""
        import copy

        clone = copy.deepcopy(model)
        clone.load_state_dict(self.state)
        return clone

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.state[k].copy_(v)


def _check_disjoint(optimizer: torch.optim.Optimizer, extra: dict[str, torch.optim.Optimizer]) -> None:
    seen = {id(q) for g in optimizer.param_groups for q in g["params"]}
    for name, opt in extra.items():
        for g in opt.param_groups:
            for q in g["params"]:
                if id(q) in seen:
                    raise ConfigError(f"extra optimizer '{name}' updates a parameter that the main "
                                      "optimizer updates too; leave it out of param_groups")
                seen.add(id(q))


def _progress_state(p: _Progress) -> dict[str, Any]:
    """The progress as plain values (running sums as Python floats)."""
    state = dataclasses.asdict(p)
    for key in ("epoch_sums", "interval_sums"):
        state[key] = {k: float(v) for k, v in state[key].items()}
    return state


def _reduce_device() -> torch.device:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _diff_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def train(task: Task, cfg: RunConfig, *, resume: str | None = None, task_name: str | None = None) -> TrainResult:
    """Train ``task`` with ``cfg``; see the module docstring.

    Args:
        task: the task (model, data, loss, evaluation, export).
        cfg: the validated run configuration (``task.config_class``).
        resume: ``None`` (fresh run; refuses an ``output_dir`` that holds checkpoints),
            ``"latest"`` (newest checkpoint of ``output_dir``, or a fresh start if none) or
            a checkpoint path.
        task_name: recorded in checkpoints and checked on resume.
    """
    return Trainer(task, cfg, task_name=task_name).fit(resume)
