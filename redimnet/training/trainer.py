"""The training loop: one process, or one per GPU/CPU under ``torchrun`` (DDP).

:func:`train` runs a :class:`~redimnet.training.config.TrainingConfig` to the
end (or to ``train.max_steps``), writing into ``train.output_dir``::

    checkpoints/state_stepNNNNNNNN.pt   training states (for --resume)
    checkpoints/model_stepNNNNNNNN.pt   model snapshots, release format (for averaging)
    train_log.csv                       step, epoch, loss, accuracy, margin, lr, ...
    validation.csv                      step, EER (when validation is configured)
    final.pt                            the last model, release format
    model_avg.pt                        mean of the last train.average_last snapshots
    config.yaml                         the configuration used

The loop is the same for every kind of model; what is particular to one kind
(its data, network, loss, validation and model file format) is a *task*
(:mod:`redimnet.training.tasks`): speaker embeddings for a :class:`TrainingConfig`,
the segmentation network for a
:class:`redimnet.training.segmentation.SegmentationTrainingConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..errors import RedimnetError, TrainingError
from ..models.checkpoint import first_non_finite
from .checkpointing import model_snapshots, prune, restore_rng_states, training_states
from .loaders import batches
from .process import Process, all_rng_states, all_sum, autocast_factory, barrier, setup_process
from .reporting import Console, Logger, StepOutcome, append_validation
from .schedulers import MarginSchedule, WarmupExponentialLR
from .state import TrainingState
from .tasks import make_task

MAX_SKIPPED_STEPS = 3  # consecutive steps with a non-finite loss or gradients that are skipped before stopping


@dataclass
class TrainingResult:
    """What :func:`train` did."""

    output_dir: Path
    steps: int
    final_model: Optional[Path]
    averaged_model: Optional[Path]
    last_loss: float = math.nan
    last_accuracy: float = math.nan
    validation_eer: Optional[float] = None
    initial_validation_eer: Optional[float] = None
    bad_audio: int = 0
    log_rows: List[dict] = field(default_factory=list)


# --------------------------------------------------------------------------- distributed helpers


# --------------------------------------------------------------------------- pieces


# --------------------------------------------------------------------------- typed state


@dataclass
class _Plan:
    """What the run trains on and for how long; fixed before the first step."""

    config: Any  # a TrainingConfig or a SegmentationTrainingConfig
    task: Any  # its task (redimnet.training.tasks): what is particular to the kind of model
    process: Process
    out: Path
    num_items: int
    steps_per_epoch: int
    last_step: int

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"


@dataclass
class _Parts:
    """The model being trained and everything that updates it."""

    model: Any  # the network trained (a ReDimNet, a SegmentationNet, ...)
    loss: Any
    module: nn.Module  # the network and its loss as one module (what the task's step runs)
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]
    lr_at: WarmupExponentialLR
    margin_at: Optional[MarginSchedule]
    autocast: Callable
    wrapped: nn.Module = field(init=False)  # the module, or its DDP wrapper (set by train)


@dataclass
class _Counters:
    """Progress kept in training states: steps taken, audio reads failed and tried."""

    step: int = 0
    bad_audio: int = 0
    attempted: int = 0
    non_finite_run: int = 0  # consecutive skipped steps (not saved: a resumed run starts afresh)


# --------------------------------------------------------------------------- the loop


def train(config, resume: bool = False, log: Optional[Callable[[str], None]] = None) -> TrainingResult:
    """Train as ``config`` says; with ``resume``, continue from the newest training state.

    ``config``: a :class:`TrainingConfig` (a speaker-embedding model) or a
    :class:`redimnet.training.segmentation.SegmentationTrainingConfig` (the segmentation network).

    A step whose loss or gradients are not finite is skipped (the weights are
    left as they were, as AMP does); more than :data:`MAX_SKIPPED_STEPS` such
    steps in a row stop training with a :class:`TrainingError` naming the step
    and the loss.  Non-finite weights are never written to a checkpoint.
    """
    config.check_paths()
    process = setup_process(config.train.device)
    try:
        return _train(config, resume, process, Console(process, log))
    finally:
        if process.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(config, resume: bool, process: Process, console: Console) -> TrainingResult:
    tc = config.train
    if tc.precision == "fp16" and process.device.type != "cuda":
        raise TrainingError(f"{config.source}: train.precision: fp16 needs a GPU; use bf16 or fp32 on CPU")
    out = Path(tc.output_dir)
    existing = training_states(out / "checkpoints")
    if existing and not resume:
        raise TrainingError(
            f"{out} already holds training checkpoints ({existing[-1].name}); "
            "add --resume to continue that run, or set train.output_dir to a new folder"
        )
    plan = _make_plan(config, process, out)
    parts = _build_parts(plan, init_weights=not (resume and existing), say=console.say)
    counters = _Counters()
    if resume and existing:
        _restore(plan, parts, counters, existing, console.say)
    elif resume:
        console.say(f"no training state in {plan.checkpoints}; starting from step 0")
    _prepare_output(plan, counters)
    if process.distributed:
        parts.wrapped = nn.parallel.DistributedDataParallel(
            parts.module, device_ids=[process.device.index] if process.device.type == "cuda" else None
        )
    else:
        parts.wrapped = parts.module
    console.say(
        f"{plan.task.describe(parts.model, plan.num_items)}; {plan.steps_per_epoch} "
        f"steps/epoch x {tc.epochs} epochs ({process.size} process(es), {process.device.type})"
    )

    result = TrainingResult(out, counters.step, None, None, bad_audio=counters.bad_audio)
    if process.is_main and tc.progress:
        console.open_bar(plan.last_step, counters.step)
    parts.module.train()
    if plan.task.validates and counters.step == 0:
        eer_value = _validate(plan, parts, 0, console.say)
        if eer_value is not None:
            result.initial_validation_eer = eer_value
    logger = Logger(
        process, plan.steps_per_epoch, out / "train_log.csv", keep_until=counters.step if counters.step > 0 else None
    )
    try:
        while counters.step < plan.last_step:
            _train_epoch(plan, parts, counters, logger, result, console)
    finally:
        console.close()
    result.steps, result.bad_audio = counters.step, counters.bad_audio
    _finish(plan, parts, result, console.say)
    return result


# --------------------------------------------------------------------------- setting up


def _make_plan(config, process: Process, out: Path) -> _Plan:
    """Read the task's training data and work out the number of steps."""
    tc, data = config.train, config.data
    task = make_task(config)
    num_items = task.read_data(process)
    per_step = data.batch_size * process.size
    steps_per_epoch = tc.steps_per_epoch or num_items // per_step
    if steps_per_epoch < 1:
        raise TrainingError(
            f"{config.source}: data.batch_size: {num_items} {task.item_name} do not fill one step of "
            f"{data.batch_size} x {process.size} process(es); lower data.batch_size"
        )
    total_steps = steps_per_epoch * tc.epochs
    return _Plan(config, task, process, out, num_items, steps_per_epoch, min(total_steps, tc.max_steps or total_steps))


def _build_parts(plan: _Plan, init_weights: bool, say: Callable) -> _Parts:
    """Model, loss, optimizer and schedules, seeded as the config says."""
    config, process = plan.config, plan.process
    tc, opt = config.train, config.optimizer
    torch.manual_seed(tc.seed)
    model, loss, module, optimizer = plan.task.build(say, init_weights)
    module.to(process.device)
    scaler = torch.amp.GradScaler("cuda") if tc.precision == "fp16" else None
    lr_at = WarmupExponentialLR(opt.lr, opt.final_lr, opt.warmup_epochs, tc.epochs, opt.warm_from_zero)
    torch.manual_seed(tc.seed + 1 + 1000 * process.rank)  # per-process randomness (SpecAugment, dropout)
    return _Parts(
        model,
        loss,
        module,
        optimizer,
        scaler,
        lr_at,
        plan.task.margin_schedule(),
        autocast_factory(tc.precision, process.device),
    )


def _restore(plan: _Plan, parts: _Parts, counters: _Counters, existing: List[Path], say: Callable):
    """Continue from the newest readable training state in ``existing``."""
    config, out = plan.config, plan.out
    state: Optional[TrainingState] = None
    for path in reversed(existing):
        try:
            state = TrainingState.load(path)
            break
        except RedimnetError as error:
            say(f"warning: skipping unreadable {path.name}: {error}")
    if state is None:
        raise TrainingError(f"no readable training state in {plan.checkpoints}")
    if state.model_config != parts.model.config.to_dict():
        raise TrainingError(
            f"{config.source}: the model options differ from the run in {out} "
            "(model.preset / model.overrides / augment.spec_augment); resume with the same config"
        )
    plan.task.check_state(state, plan.steps_per_epoch, out)
    parts.model.load_state_dict(state.model)
    parts.loss.load_state_dict(state.loss)
    parts.optimizer.load_state_dict(state.optimizer)
    if parts.scaler is not None and state.scaler:
        parts.scaler.load_state_dict(state.scaler)
    counters.step, counters.bad_audio, counters.attempted = state.step, state.bad_audio, state.attempted
    rank = plan.process.rank
    rng = state.rng[rank] if rank < len(state.rng) else None
    if rng is not None:
        restore_rng_states(rng)
    say(f"resuming {out} at step {counters.step} (epoch {counters.step / plan.steps_per_epoch:.2f})")


def _prepare_output(plan: _Plan, counters: _Counters):
    """The output folder with the config used; a fresh run drops a stale log."""
    if not plan.process.is_main:
        return
    import yaml

    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "config.yaml").write_text(yaml.safe_dump(plan.config.to_dict(), sort_keys=False), encoding="utf-8")
    if counters.step == 0 and (plan.out / "train_log.csv").exists():
        (plan.out / "train_log.csv").unlink()


# --------------------------------------------------------------------------- epoch and step


def _train_epoch(
    plan: _Plan, parts: _Parts, counters: _Counters, logger: "Logger", result: TrainingResult, console: Console
):
    """Steps from ``counters.step`` to the end of its epoch (or to the last step)."""
    config, tc = plan.config, plan.config.train
    epoch = counters.step // plan.steps_per_epoch
    loader = plan.task.loader(plan.process, epoch, counters.step - epoch * plan.steps_per_epoch, plan.steps_per_epoch)
    for batch in batches(loader):
        outcome = _train_step(plan, parts, counters, batch, console.say)
        logger.add(outcome)
        console.advance(outcome)
        step = counters.step
        if step % tc.log_every == 0 or step == plan.last_step:
            row = logger.write_row(step, outcome, counters.bad_audio)
            result.last_loss, result.last_accuracy = row["loss"], row["accuracy"]
            result.log_rows.append(row)
        end_of_epoch = step % plan.steps_per_epoch == 0
        if step % tc.checkpoint_every == 0 or end_of_epoch or step == plan.last_step:
            _save_checkpoint(plan, parts, counters)
        if plan.task.validates and (step % config.validation.every == 0 or step == plan.last_step):
            eer_value = _validate(plan, parts, step, console.say)
            if eer_value is not None:
                result.validation_eer = eer_value
        if step >= plan.last_step or end_of_epoch:
            break


def _train_step(plan: _Plan, parts: _Parts, counters: _Counters, batch: dict, say: Callable) -> StepOutcome:
    """One optimisation step on ``batch``; skipped (weights unchanged) when the loss or gradients are not finite."""
    process, tc = plan.process, plan.config.train
    epoch_float = counters.step / plan.steps_per_epoch
    lr = parts.lr_at(epoch_float)
    margin = parts.margin_at(epoch_float) if parts.margin_at is not None else 0.0
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    if parts.margin_at is not None:
        parts.loss.margin = margin
    value, correct_count, count = plan.task.step(parts.wrapped, batch, process.device, parts.autocast)
    parts.optimizer.zero_grad(set_to_none=True)
    if parts.scaler is not None:
        parts.scaler.scale(value).backward()
        parts.scaler.unscale_(parts.optimizer)
    else:
        value.backward()
    parameters = [p for p in parts.module.parameters() if p.grad is not None]
    if tc.grad_clip:
        grad_norm = float(nn.utils.clip_grad_norm_(parameters, tc.grad_clip))
        logged_norm = grad_norm
    else:
        grad_norm = float(nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None]))
        logged_norm = math.nan
    loss_value = float(value.detach())
    # with fp16, the scaler skips steps whose gradients overflow; only a non-finite loss counts then
    bad = not math.isfinite(loss_value) or (parts.scaler is None and not math.isfinite(grad_norm))
    failed, tried, bad_anywhere = all_sum([batch["failed"], batch["attempted"], float(bad)], process)
    skipped = bad_anywhere > 0
    if skipped:
        parts.optimizer.zero_grad(set_to_none=True)
        if parts.scaler is not None:
            parts.scaler.update()
    elif parts.scaler is not None:
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
    else:
        parts.optimizer.step()
    counters.step += 1
    _count_bad_audio(plan, counters, int(failed), int(tried), batch["failed_paths"], say)
    _check_finite_run(plan, counters, skipped, loss_value, grad_norm, say)
    correct = 0.0 if skipped else float(correct_count)
    return StepOutcome(loss_value, correct, int(count), logged_norm, lr, margin, skipped, len(batch["wave"]))


def _count_bad_audio(plan: _Plan, counters: _Counters, failed: int, tried: int, failed_paths: List[str], say: Callable):
    """Add a step's failed audio reads; stop when more than ``data.max_bad_fraction`` failed."""
    data = plan.config.data
    counters.bad_audio += failed
    counters.attempted += tried
    for text in failed_paths[:3]:
        say(f"warning: skipped unreadable audio: {text}")
    bad, attempted = counters.bad_audio, counters.attempted
    if bad and attempted >= min(1000, plan.num_items) and bad / attempted > data.max_bad_fraction:
        raise TrainingError(
            f"{bad} of {attempted} audio reads failed ({100 * bad / attempted:.1f} %), more than "
            f"data.max_bad_fraction = {data.max_bad_fraction} in {plan.config.source}; fix or remove the "
            "unreadable files (see the warnings above) or raise data.max_bad_fraction"
        )


def _check_finite_run(
    plan: _Plan, counters: _Counters, skipped: bool, loss_value: float, grad_norm: float, say: Callable
):
    """Count consecutive skipped steps; more than :data:`MAX_SKIPPED_STEPS` stop training."""
    if not skipped:
        counters.non_finite_run = 0
        return
    counters.non_finite_run += 1
    what = f"loss {loss_value:.6g}, gradient norm {grad_norm:.6g}"
    if counters.non_finite_run > MAX_SKIPPED_STEPS:
        saved = training_states(plan.checkpoints)
        raise TrainingError(
            f"training stopped at step {counters.step}: the loss or the gradients were not finite for "
            f"{counters.non_finite_run} steps in a row ({what}); nothing was saved for these steps"
            + (f" (last saved state: {saved[-1]})" if saved else "")
            + f". Lower optimizer.lr, set train.grad_clip or check the data in {plan.config.source}"
        )
    say(
        f"warning: step {counters.step} skipped: non-finite {what} "
        f"({counters.non_finite_run} in a row; training stops after {MAX_SKIPPED_STEPS})"
    )


# --------------------------------------------------------------------------- logging, checkpoints, validation


def _save_checkpoint(plan: _Plan, parts: _Parts, counters: _Counters):
    """Training state and model snapshot of step ``counters.step`` (main process), refusing non-finite weights."""
    process, step, ckpt_dir = plan.process, counters.step, plan.checkpoints
    for name, module in (("model", parts.model), ("loss", parts.loss)):  # the same on every process
        bad = first_non_finite(module.state_dict())
        if bad is not None:
            raise TrainingError(
                f"training stopped at step {step}: the {name} weight {bad!r} is not finite, "
                "so no checkpoint is written. Lower optimizer.lr or set train.grad_clip in "
                f"{plan.config.source}"
            )
    states = all_rng_states(process)
    if process.is_main:
        TrainingState(
            step=step,
            model=parts.model.state_dict(),
            loss=parts.loss.state_dict(),
            optimizer=parts.optimizer.state_dict(),
            scaler=parts.scaler.state_dict() if parts.scaler else None,
            rng=states,
            bad_audio=counters.bad_audio,
            attempted=counters.attempted,
            steps_per_epoch=plan.steps_per_epoch,
            model_config=parts.model.config.to_dict(),
            config=plan.config.to_dict(),
            **plan.task.state(),
        ).save(ckpt_dir / f"state_step{step:08d}.pt")
        plan.task.save_model(parts.model, ckpt_dir / f"model_step{step:08d}.pt")
        prune(ckpt_dir, plan.config.train.keep_checkpoints)
    barrier(process)


def _validate(plan: _Plan, parts: _Parts, step: int, say: Callable) -> Optional[float]:
    """The task's validation measure at ``step`` (main process; None elsewhere), appended to ``validation.csv``."""
    task, value = plan.task, None
    if plan.process.is_main:
        value = task.validate(parts.model, plan.process.device)  # only called with validation configured
        append_validation(plan.out / "validation.csv", step, value, task.validation_column)
        measure = f"validation {task.validation_name} {100 * value:.2f} %"
        say(f"step 0 (before training): {measure}" if step == 0 else f"step {step}: {measure}")
    barrier(plan.process)
    return value


def _finish(plan: _Plan, parts: _Parts, result: TrainingResult, say: Callable):
    """``final.pt`` and, if asked, ``model_avg.pt`` (main process)."""
    tc = plan.config.train
    if plan.process.is_main:
        result.final_model = plan.task.save_model(parts.model, plan.out / "final.pt")
        if tc.average_last:
            snapshots = model_snapshots(plan.checkpoints)[-tc.average_last :]
            result.averaged_model = plan.task.average(snapshots, plan.out / "model_avg.pt")
        say(
            f"done: {result.steps} steps; final model {result.final_model}"
            + (f", average of {len(snapshots)} snapshots {result.averaged_model}" if tc.average_last else "")
        )
    barrier(plan.process)
