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
"""

from __future__ import annotations

import contextlib
import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .._utils.distributed import World, current_world, init
from .._utils.fileio import atomic_write
from ..errors import RedimnetError
from ..models.checkpoint import first_non_finite, load_checkpoint, save_checkpoint
from ..models.families import build_model
from ..models.redimnet import ReDimNet
from .augment import AugmentationSettings, Augmenter
from .checkpointing import (
    average_checkpoints,
    load_training_state,
    model_snapshots,
    prune,
    restore_rng_states,
    rng_states,
    save_training_state,
    training_states,
)
from .config import TrainingConfig
from .data import (
    CropDataset,
    EpochSampler,
    ExampleMaker,
    ShardDataset,
    collate_examples,
    read_csv_list,
    read_kaldi_lists,
    read_shard_index,
    speaker_labels,
)
from .losses import Loss, make_loss
from .schedulers import MarginSchedule, WarmupExponentialLR

LOG_COLUMNS = ["step", "epoch", "loss", "accuracy", "margin", "lr", "grad_norm", "bad_audio", "examples_per_s"]
MAX_SKIPPED_STEPS = 3  # consecutive steps with a non-finite loss or gradients that are skipped before stopping


class TrainingError(RedimnetError):
    """Training cannot go on (too much unreadable audio, a resume that does not fit, ...)."""


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


class SpeakerClassifier(nn.Module):
    """The embedding model and the loss that owns the class weights, as one module (for DDP)."""

    def __init__(self, model: ReDimNet, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, wave: torch.Tensor, labels: torch.Tensor, autocast: Callable):
        with autocast():
            embeddings = self.model(wave)
        return self.loss(embeddings.float(), labels)


# --------------------------------------------------------------------------- distributed helpers


@dataclass(frozen=True)
class Process(World):
    """This process's place in the run (:class:`redimnet._utils.distributed.World`) and its device."""

    device: torch.device = torch.device("cpu")


def _setup_process(device_choice: str) -> Process:
    world = current_world()
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise TrainingError("train.device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    device = torch.device("cuda", world.local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    init(world, backend="nccl" if use_cuda else "gloo")
    return Process(world.rank, world.size, world.local_rank, device)


def _all_sum(values: List[float], process: Process) -> List[float]:
    if not process.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=process.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _barrier(process: Process):
    if process.distributed:
        dist.barrier()


# --------------------------------------------------------------------------- pieces


def _read_training_list(config: TrainingConfig):
    data = config.data
    if data.shards:
        _, counts, speakers = read_shard_index(data.shards)
        return None, sum(counts), speakers
    # the configuration's checks: exactly one of shards, wav_scp (with utt2spk) and csv
    utterances = (
        read_kaldi_lists(data.wav_scp, cast(str, data.utt2spk)) if data.wav_scp else read_csv_list(cast(str, data.csv))
    )
    return utterances, len(utterances), [u.speaker for u in utterances]


def _make_augmenter(config: TrainingConfig) -> Optional[Augmenter]:
    aug = config.augment
    if not (aug.noise or aug.rir) or aug.prob == 0:
        return None
    settings = AugmentationSettings(
        prob=aug.prob,
        noise_dir=aug.noise,
        rir_dir=aug.rir,
        snr=dict(aug.snr),
        babble_speakers=(aug.babble_speakers[0], aug.babble_speakers[1]),
    )
    return Augmenter(settings, config.data.sample_rate)


def _autocast_factory(precision: str, device: torch.device) -> Callable:
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _init_weights(model: ReDimNet, loss: nn.Module, path: str, config: TrainingConfig, log: Callable):
    """Load ``model.init_from``: a training state (model + loss) or a release checkpoint (model only)."""
    try:
        state = load_training_state(path)
    except RedimnetError:
        state = None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, KeyError) as error:
            raise TrainingError(
                f"{config.source}: model.init_from: the model in {path} has a different "
                f"architecture ({str(error).splitlines()[0]})"
            ) from None
        try:
            loss.load_state_dict(state["loss"])
            log(f"initialised model and loss weights from training state {path}")
        except (RuntimeError, KeyError) as error:
            raise TrainingError(
                f"{config.source}: model.init_from: the loss weights in {path} do not fit "
                f"this config's loss ({str(error).splitlines()[0]}); the number of speakers, "
                "speed factors, loss.type and loss.subcenters must match"
            ) from None
        return
    source = load_checkpoint(path)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as error:
        raise TrainingError(
            f"{config.source}: model.init_from: {path} holds a different architecture ({str(error).splitlines()[0]})"
        ) from None
    log(f"initialised model weights from {path} (the loss weights start fresh)")


def _write_log_rows(path: Path, rows: List[dict], keep_until_step: Optional[int] = None):
    """Append rows to the CSV log; with ``keep_until_step``, first drop rows past that step (a resumed run)."""
    existing: List[dict] = []
    if keep_until_step is not None and path.exists():
        with open(path, newline="") as handle:
            existing = [r for r in csv.DictReader(handle) if int(r["step"]) <= keep_until_step]
        with atomic_write(path, mode="w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(existing)
    new_file = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)


def validation_eer(
    model: ReDimNet,
    trials_path: str,
    audio_dir: str,
    sample_rate: int,
    max_seconds: Optional[float],
    device: torch.device,
) -> float:
    """EER (fraction) of cosine scores of the model's embeddings on a trial list.

    The utterances go through the embedding pipeline (:mod:`redimnet.embedding.pipeline`),
    as in ``redimnet eval``; one longer than ``max_seconds`` is embedded as the
    mean of windows of that length.  Raises ``AudioError`` naming the files
    that cannot be embedded.
    """
    from ..audio.read import AudioError
    from ..embedding.embedder import minimum_samples
    from ..embedding.pipeline import EmbeddingPipeline, Windowing
    from ..embedding.similarity import l2_normalize
    from ..evaluation.metrics import eer
    from ..evaluation.trials import read_trials

    trials = read_trials(trials_path)
    wanted = list(trials.utterances())
    window = int(max_seconds * sample_rate) if max_seconds else 1 << 60
    was_training = model.training
    model.eval()
    try:
        pipeline = EmbeddingPipeline(
            model, device, Windowing(window, 0), minimum_samples(model), target_rate=sample_rate
        )
        rows: Dict[int, np.ndarray] = {}
        failures = []
        for result in pipeline.run([Path(audio_dir) / utt for utt in wanted]):
            if result.error is not None:
                failures.append(f"{Path(audio_dir) / wanted[result.index]}: {result.error}")
            else:
                rows[result.index] = cast(np.ndarray, result.embedding)  # set whenever error is None
    finally:
        model.train(was_training)
    if failures:
        raise AudioError(
            f"validation: {len(failures)} of {len(wanted)} utterance(s) cannot be embedded: " + "; ".join(failures[:3])
        )
    unit = dict(zip(wanted, l2_normalize(np.stack([rows[i] for i in range(len(wanted))]), dtype=np.float64)))
    scores = [float(unit[e] @ unit[t]) for e, t in zip(trials.enroll, trials.test)]
    return float(eer(scores, trials.labels))


# --------------------------------------------------------------------------- typed state


@dataclass
class _Plan:
    """What the run trains on and for how long; fixed before the first step."""

    config: TrainingConfig
    process: Process
    out: Path
    utterances: Optional[list]
    num_items: int
    labels: Dict[str, int]
    maker: ExampleMaker
    steps_per_epoch: int
    last_step: int

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"


@dataclass
class _Parts:
    """The model being trained and everything that updates it."""

    model: ReDimNet
    loss: Loss
    classifier: SpeakerClassifier
    optimizer: torch.optim.Optimizer
    scaler: Optional[torch.amp.GradScaler]
    lr_at: WarmupExponentialLR
    margin_at: MarginSchedule
    autocast: Callable
    wrapped: nn.Module = field(init=False)  # the classifier, or its DDP wrapper (set by train)


@dataclass
class _Counters:
    """Progress kept in training states: steps taken, audio reads failed and tried."""

    step: int = 0
    bad_audio: int = 0
    attempted: int = 0
    non_finite_run: int = 0  # consecutive skipped steps (not saved: a resumed run starts afresh)


@dataclass
class _Window:
    """Running totals between two log rows."""

    loss: float = 0.0
    correct: float = 0.0
    count: float = 0.0
    grad: float = 0.0
    steps: int = 0
    start: float = field(default_factory=time.time)


@dataclass
class _StepOutcome:
    """What one optimisation step saw."""

    loss: float
    correct: float
    count: int
    grad_norm: float
    lr: float
    margin: float
    skipped: bool


class _Console:
    """Messages from the main process, through the progress bar while one is shown."""

    def __init__(self, process: Process, log: Optional[Callable[[str], None]]):
        self.process, self.log = process, log
        self.bar = None

    def say(self, text: str):
        if not self.process.is_main:
            return
        if self.bar is not None and self.log is None:
            self.bar.write(text, file=sys.stderr)
        elif self.log is not None:
            self.log(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def open_bar(self, total: int, initial: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)

    def advance(self, outcome: _StepOutcome):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{outcome.loss:.3f}", lr=f"{outcome.lr:.2e}", m=f"{outcome.margin:.3f}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --------------------------------------------------------------------------- the loop


def train(config: TrainingConfig, resume: bool = False, log: Optional[Callable[[str], None]] = None) -> TrainingResult:
    """Train as ``config`` says; with ``resume``, continue from the newest training state.

    A step whose loss or gradients are not finite is skipped (the weights are
    left as they were, as AMP does); more than :data:`MAX_SKIPPED_STEPS` such
    steps in a row stop training with a :class:`TrainingError` naming the step
    and the loss.  Non-finite weights are never written to a checkpoint.
    """
    config.check_paths()
    process = _setup_process(config.train.device)
    try:
        return _train(config, resume, process, _Console(process, log))
    finally:
        if process.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainingConfig, resume: bool, process: Process, console: _Console) -> TrainingResult:
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
            parts.classifier, device_ids=[process.device.index] if process.device.type == "cuda" else None
        )
    else:
        parts.wrapped = parts.classifier
    data = config.data
    console.say(
        f"training {config.model.preset} ({sum(p.numel() for p in parts.model.parameters()) / 1e6:.2f} M "
        f"parameters) on {plan.num_items} utterances, {len(plan.labels)} speakers x "
        f"{1 + len(data.speed_perturb)} speeds = {plan.maker.num_classes} classes; {plan.steps_per_epoch} "
        f"steps/epoch x {tc.epochs} epochs ({process.size} process(es), {process.device.type})"
    )

    result = TrainingResult(out, counters.step, None, None, bad_audio=counters.bad_audio)
    if process.is_main and tc.progress:
        console.open_bar(plan.last_step, counters.step)
    parts.classifier.train()
    if config.validation.trials and counters.step == 0:
        eer_value = _validate(plan, parts, 0, console.say)
        if eer_value is not None:
            result.initial_validation_eer = eer_value
    logger = _Logger(plan, keep_until=counters.step if counters.step > 0 else None)
    try:
        while counters.step < plan.last_step:
            _train_epoch(plan, parts, counters, logger, result, console)
    finally:
        console.close()
    result.steps, result.bad_audio = counters.step, counters.bad_audio
    _finish(plan, parts, result, console.say)
    return result


# --------------------------------------------------------------------------- setting up


def _make_plan(config: TrainingConfig, process: Process, out: Path) -> _Plan:
    """Read the training list and work out the example maker and the number of steps."""
    tc, data = config.train, config.data
    utterances, num_items, speakers = _read_training_list(config)
    labels = speaker_labels(speakers)
    maker = ExampleMaker(
        crop_samples=int(round(data.crop_seconds * data.sample_rate)),
        sample_rate=data.sample_rate,
        num_speakers=len(labels),
        speed_factors=tuple(data.speed_perturb),
        augmenter=_make_augmenter(config),
    )
    per_step = data.batch_size * process.size
    steps_per_epoch = tc.steps_per_epoch or num_items // per_step
    if steps_per_epoch < 1:
        raise TrainingError(
            f"{config.source}: data.batch_size: {num_items} utterances do not fill one step of "
            f"{data.batch_size} x {process.size} process(es); lower data.batch_size"
        )
    total_steps = steps_per_epoch * tc.epochs
    return _Plan(
        config,
        process,
        out,
        utterances,
        num_items,
        labels,
        maker,
        steps_per_epoch,
        min(total_steps, tc.max_steps or total_steps),
    )


def _build_parts(plan: _Plan, init_weights: bool, say: Callable) -> _Parts:
    """Model, loss, optimizer and schedules, seeded as the config says."""
    config, process = plan.config, plan.process
    tc, opt, lo = config.train, config.optimizer, config.loss
    torch.manual_seed(tc.seed)
    model = build_model(config.model_config())
    loss = make_loss(lo, model.embed_dim, plan.maker.num_classes)
    if config.model.init_from and init_weights:
        _init_weights(model, loss, config.model.init_from, config, say)
    classifier = SpeakerClassifier(model, loss).to(process.device)
    optimizer = torch.optim.SGD(
        classifier.parameters(), lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda") if tc.precision == "fp16" else None
    lr_at = WarmupExponentialLR(opt.lr, opt.final_lr, opt.warmup_epochs, tc.epochs, opt.warm_from_zero)
    margin_at = MarginSchedule(
        lo.initial_margin, lo.margin, lo.margin_increase_start_epoch, lo.margin_fix_epoch, lo.margin_increase
    )
    torch.manual_seed(tc.seed + 1 + 1000 * process.rank)  # per-process randomness (SpecAugment, dropout)
    return _Parts(
        model, loss, classifier, optimizer, scaler, lr_at, margin_at, _autocast_factory(tc.precision, process.device)
    )


def _restore(plan: _Plan, parts: _Parts, counters: _Counters, existing: List[Path], say: Callable):
    """Continue from the newest readable training state in ``existing``."""
    config, out = plan.config, plan.out
    state = None
    for path in reversed(existing):
        try:
            state = load_training_state(path)
            break
        except RedimnetError as error:
            say(f"warning: skipping unreadable {path.name}: {error}")
    if state is None:
        raise TrainingError(f"no readable training state in {plan.checkpoints}")
    if state["model_config"] != parts.model.config.to_dict():
        raise TrainingError(
            f"{config.source}: the model options differ from the run in {out} "
            "(model.preset / model.overrides / augment.spec_augment); resume with the same config"
        )
    if state["num_classes"] != plan.maker.num_classes or state["steps_per_epoch"] != plan.steps_per_epoch:
        raise TrainingError(
            f"{config.source}: the data differ from the run in {out} ({state['num_classes']} "
            f"classes and {state['steps_per_epoch']} steps per epoch there, {plan.maker.num_classes} "
            f"and {plan.steps_per_epoch} now); resume with the same lists and batch size"
        )
    parts.model.load_state_dict(state["model"])
    parts.loss.load_state_dict(state["loss"])
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.scaler is not None and state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    counters.step, counters.bad_audio, counters.attempted = state["step"], state["bad_audio"], state["attempted"]
    rank = plan.process.rank
    rng = state["rng"][rank] if rank < len(state["rng"]) else None
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
    plan: _Plan, parts: _Parts, counters: _Counters, logger: "_Logger", result: TrainingResult, console: _Console
):
    """Steps from ``counters.step`` to the end of its epoch (or to the last step)."""
    config, tc = plan.config, plan.config.train
    epoch = counters.step // plan.steps_per_epoch
    loader = _make_loader(
        config,
        plan.utterances,
        plan.labels,
        plan.maker,
        plan.process,
        epoch,
        counters.step - epoch * plan.steps_per_epoch,
        plan.steps_per_epoch,
    )
    for batch in _batches(loader):
        outcome = _train_step(plan, parts, counters, batch, console.say)
        logger.add(outcome)
        console.advance(outcome)
        step = counters.step
        if step % tc.log_every == 0 or step == plan.last_step:
            logger.write_row(step, outcome, counters, result)
        end_of_epoch = step % plan.steps_per_epoch == 0
        if step % tc.checkpoint_every == 0 or end_of_epoch or step == plan.last_step:
            _save_checkpoint(plan, parts, counters)
        if config.validation.trials and (step % config.validation.every == 0 or step == plan.last_step):
            eer_value = _validate(plan, parts, step, console.say)
            if eer_value is not None:
                result.validation_eer = eer_value
        if step >= plan.last_step or end_of_epoch:
            break


def _batches(loader) -> Iterator[dict]:
    """The loader's batches; an error raised in a DataLoader worker is re-raised with its own message only."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RedimnetError as error:
            message = _worker_message(error)
            if message is None:
                raise
            raise type(error)(message) from None
        yield batch


def _worker_message(error: Exception) -> Optional[str]:
    """The original message of an exception the DataLoader re-raised from a worker (with its traceback)."""
    text = str(error)
    if not text.startswith("Caught "):
        return None
    marker = f"{type(error).__name__}: "
    for line in reversed(text.splitlines()):
        head, found, message = line.partition(marker)
        if found and (not head or head.endswith(".")):
            return message
    return None


def _train_step(plan: _Plan, parts: _Parts, counters: _Counters, batch: dict, say: Callable) -> _StepOutcome:
    """One optimisation step on ``batch``; skipped (weights unchanged) when the loss or gradients are not finite."""
    process, tc = plan.process, plan.config.train
    epoch_float = counters.step / plan.steps_per_epoch
    lr, margin = parts.lr_at(epoch_float), parts.margin_at(epoch_float)
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    parts.loss.margin = margin
    wave = batch["wave"].to(process.device, non_blocking=True)
    target = batch["label"].to(process.device, non_blocking=True)
    value, scores = parts.wrapped(wave, target, parts.autocast)
    parts.optimizer.zero_grad(set_to_none=True)
    if parts.scaler is not None:
        parts.scaler.scale(value).backward()
        parts.scaler.unscale_(parts.optimizer)
    else:
        value.backward()
    parameters = [p for p in parts.classifier.parameters() if p.grad is not None]
    if tc.grad_clip:
        grad_norm = float(nn.utils.clip_grad_norm_(parameters, tc.grad_clip))
        logged_norm = grad_norm
    else:
        grad_norm = float(nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None]))
        logged_norm = math.nan
    loss_value = float(value.detach())
    # with fp16, the scaler skips steps whose gradients overflow; only a non-finite loss counts then
    bad = not math.isfinite(loss_value) or (parts.scaler is None and not math.isfinite(grad_norm))
    failed, tried, bad_anywhere = _all_sum([batch["failed"], batch["attempted"], float(bad)], process)
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
    correct = 0.0 if skipped else float((scores.argmax(dim=1) == target).sum())
    return _StepOutcome(loss_value, correct, len(target), logged_norm, lr, margin, skipped)


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


class _Logger:
    """Running totals of the steps since the last row, and the rows of ``train_log.csv``."""

    def __init__(self, plan: _Plan, keep_until: Optional[int]):
        self.plan, self.keep_until = plan, keep_until
        self.window = _Window()
        self.pending: List[dict] = []

    def add(self, outcome: _StepOutcome):
        window = self.window
        if not outcome.skipped:
            window.loss += outcome.loss * outcome.count
            window.correct += outcome.correct
            window.count += outcome.count
        window.grad += 0.0 if math.isnan(outcome.grad_norm) or outcome.skipped else outcome.grad_norm
        window.steps += 1

    def write_row(self, step: int, outcome: _StepOutcome, counters: _Counters, result: TrainingResult):
        plan, window = self.plan, self.window
        loss_sum, correct, count = _all_sum([window.loss, window.correct, window.count], plan.process)
        elapsed = max(time.time() - window.start, 1e-9)
        loss = round(loss_sum / count, 5) if count else math.nan
        accuracy = round(correct / count, 5) if count else math.nan
        row = {
            "step": step,
            "epoch": round(step / plan.steps_per_epoch, 4),
            "loss": loss,
            "accuracy": accuracy,
            "margin": round(outcome.margin, 5),
            "lr": f"{outcome.lr:.6g}",
            "grad_norm": round(window.grad / window.steps, 4),
            "bad_audio": counters.bad_audio,
            "examples_per_s": round(count / elapsed, 1),
        }
        result.last_loss, result.last_accuracy = loss, accuracy
        result.log_rows.append(row)
        self.pending.append(row)
        if plan.process.is_main:
            _write_log_rows(plan.out / "train_log.csv", self.pending, self.keep_until)
            self.keep_until, self.pending = None, []
        self.window = _Window()


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
    states = _all_rng_states(process)
    if process.is_main:
        save_training_state(
            ckpt_dir / f"state_step{step:08d}.pt",
            {
                "step": step,
                "model": parts.model.state_dict(),
                "loss": parts.loss.state_dict(),
                "optimizer": parts.optimizer.state_dict(),
                "scaler": parts.scaler.state_dict() if parts.scaler else None,
                "rng": states,
                "bad_audio": counters.bad_audio,
                "attempted": counters.attempted,
                "num_classes": plan.maker.num_classes,
                "steps_per_epoch": plan.steps_per_epoch,
                "model_config": parts.model.config.to_dict(),
                "config": plan.config.to_dict(),
                "speakers": sorted(plan.labels),
            },
        )
        save_checkpoint(parts.model, ckpt_dir / f"model_step{step:08d}.pt")
        prune(ckpt_dir, plan.config.train.keep_checkpoints)
    _barrier(process)


def _validate(plan: _Plan, parts: _Parts, step: int, say: Callable) -> Optional[float]:
    """Validation EER at ``step`` (main process; None elsewhere), appended to ``validation.csv``."""
    config, value = plan.config, None
    if plan.process.is_main:
        v = config.validation
        # only called with validation configured: trials and audio_dir are both set
        value = validation_eer(
            parts.model,
            cast(str, v.trials),
            cast(str, v.audio_dir),
            config.data.sample_rate,
            v.max_seconds,
            plan.process.device,
        )
        _append_validation(plan.out / "validation.csv", step, value)
        say(
            f"step 0 (untrained): validation EER {100 * value:.2f} %"
            if step == 0
            else f"step {step}: validation EER {100 * value:.2f} %"
        )
    _barrier(plan.process)
    return value


def _finish(plan: _Plan, parts: _Parts, result: TrainingResult, say: Callable):
    """``final.pt`` and, if asked, ``model_avg.pt`` (main process)."""
    tc = plan.config.train
    if plan.process.is_main:
        result.final_model = Path(save_checkpoint(parts.model, plan.out / "final.pt"))
        if tc.average_last:
            snapshots = model_snapshots(plan.checkpoints)[-tc.average_last :]
            result.averaged_model = average_checkpoints(snapshots, plan.out / "model_avg.pt")
        say(
            f"done: {result.steps} steps; final model {result.final_model}"
            + (f", average of {len(snapshots)} snapshots {result.averaged_model}" if tc.average_last else "")
        )
    _barrier(plan.process)


def _all_rng_states(process: Process) -> list:
    """Every process's random states, gathered on the main process."""
    mine = rng_states()
    if not process.distributed:
        return [mine]
    gathered = [None] * process.size
    dist.all_gather_object(gathered, mine)
    return gathered


def _append_validation(path: Path, step: int, value: float):
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        if new:
            handle.write("step,eer\n")
        handle.write(f"{step},{value:.6f}\n")


def _make_loader(
    config: TrainingConfig,
    utterances,
    labels,
    maker,
    process: Process,
    epoch: int,
    start_step: int,
    steps_per_epoch: int,
) -> torch.utils.data.DataLoader:
    data, seed = config.data, config.train.seed
    # The loader's own generator seeds its workers, so the global RNG is left untouched.
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    common: Dict[str, Any] = dict(
        batch_size=data.batch_size,
        collate_fn=collate_examples,
        num_workers=data.num_workers,
        pin_memory=process.device.type == "cuda",
        drop_last=True,
        generator=generator,
        persistent_workers=False,
    )
    if data.num_workers > 0:
        common["prefetch_factor"] = 2
    if data.shards:
        shards = ShardDataset(
            data.shards, labels, maker, seed, data.batch_size, process.rank, process.size, data.shuffle_buffer
        )
        shards.set_epoch(epoch, start_step)
        return torch.utils.data.DataLoader(shards, **common)
    dataset = CropDataset(utterances, labels, maker, seed)
    sampler = EpochSampler(
        len(dataset), data.batch_size, steps_per_epoch, seed, epoch, process.rank, process.size, start_step
    )
    return torch.utils.data.DataLoader(dataset, sampler=sampler, **common)
