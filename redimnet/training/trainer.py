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
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..distributed import World, current_world, init
from ..errors import RedimnetError
from ..model import ReDimNet
from .augment import AugmentationSettings, Augmenter, read_audio
from .checkpointing import (average_checkpoints, load_training_state, model_snapshots, prune, restore_rng_states,
                            rng_states, save_training_state, training_states)
from .config import TrainingConfig
from .data import (CropDataset, EpochSampler, ExampleMaker, ShardDataset, collate_examples, read_csv_list,
                   read_kaldi_lists, read_shard_index, speaker_labels)
from .losses import make_loss
from .schedulers import MarginSchedule, WarmupExponentialLR

LOG_COLUMNS = ["step", "epoch", "loss", "accuracy", "margin", "lr", "grad_norm", "bad_audio", "examples_per_s"]


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
    """This process's place in the run (:class:`redimnet.distributed.World`) and its device."""

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
    utterances = read_kaldi_lists(data.wav_scp, data.utt2spk) if data.wav_scp else read_csv_list(data.csv)
    return utterances, len(utterances), [u.speaker for u in utterances]


def _make_augmenter(config: TrainingConfig) -> Optional[Augmenter]:
    aug = config.augment
    if not (aug.noise or aug.rir) or aug.prob == 0:
        return None
    settings = AugmentationSettings(prob=aug.prob, noise_dir=aug.noise, rir_dir=aug.rir, snr=dict(aug.snr),
                                    babble_speakers=tuple(aug.babble_speakers))
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
            raise TrainingError(f"{config.source}: model.init_from: the model in {path} has a different "
                                f"architecture ({str(error).splitlines()[0]})") from None
        try:
            loss.load_state_dict(state["loss"])
            log(f"initialised model and loss weights from training state {path}")
        except (RuntimeError, KeyError) as error:
            raise TrainingError(f"{config.source}: model.init_from: the loss weights in {path} do not fit "
                                f"this config's loss ({str(error).splitlines()[0]}); the number of speakers, "
                                "speed factors, loss.type and loss.subcenters must match") from None
        return
    source = load_checkpoint(path)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as error:
        raise TrainingError(f"{config.source}: model.init_from: {path} holds a different architecture "
                            f"({str(error).splitlines()[0]})") from None
    log(f"initialised model weights from {path} (the loss weights start fresh)")


def _write_log_rows(path: Path, rows: List[dict], keep_until_step: Optional[int] = None):
    """Append rows to the CSV log; with ``keep_until_step``, first drop rows past that step (a resumed run)."""
    existing: List[dict] = []
    if keep_until_step is not None and path.exists():
        with open(path, newline="") as handle:
            existing = [r for r in csv.DictReader(handle) if int(r["step"]) <= keep_until_step]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(existing)
    new_file = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)


def validation_eer(model: ReDimNet, trials_path: str, audio_dir: str, sample_rate: int,
                   max_seconds: Optional[float], device: torch.device) -> float:
    """EER (fraction) of cosine scores of the model's embeddings on a trial list."""
    from ..evaluation.metrics import eer
    from ..evaluation.trials import read_trials

    trials = read_trials(trials_path)
    wanted = trials.utterances()
    embeddings: Dict[str, np.ndarray] = {}
    limit = int(max_seconds * sample_rate) if max_seconds else None
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for utt in wanted:
            wave = read_audio(Path(audio_dir) / utt, sample_rate)[:limit]
            vector = model(torch.from_numpy(wave).unsqueeze(0).to(device)).float().cpu().numpy()[0]
            embeddings[utt] = vector / (np.linalg.norm(vector) + 1e-12)
    model.train(was_training)
    scores = [float(embeddings[e] @ embeddings[t]) for e, t in zip(trials.enroll, trials.test)]
    return float(eer(scores, trials.labels))


# --------------------------------------------------------------------------- the loop

def train(config: TrainingConfig, resume: bool = False, log: Callable[[str], None] = None) -> TrainingResult:
    """Train as ``config`` says; with ``resume``, continue from the newest training state."""
    config.check_paths()
    process = _setup_process(config.train.device)
    try:
        return _train(config, resume, process, log)
    finally:
        if process.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainingConfig, resume: bool, process: Process, log) -> TrainingResult:
    printer = log or (lambda text: print(text, file=sys.stderr, flush=True))

    def say(text: str):
        if process.is_main:
            if progress is not None and log is None:
                progress.write(text, file=sys.stderr)
            else:
                printer(text)

    progress = None

    tc, data = config.train, config.data
    if tc.precision == "fp16" and process.device.type != "cuda":
        raise TrainingError(f"{config.source}: train.precision: fp16 needs a GPU; use bf16 or fp32 on CPU")
    out = Path(tc.output_dir)
    ckpt_dir = out / "checkpoints"
    existing = training_states(ckpt_dir)
    if existing and not resume:
        raise TrainingError(f"{out} already holds training checkpoints ({existing[-1].name}); "
                            "add --resume to continue that run, or set train.output_dir to a new folder")

    # ---- data
    utterances, num_items, speakers = _read_training_list(config)
    labels = speaker_labels(speakers)
    maker = ExampleMaker(crop_samples=int(round(data.crop_seconds * data.sample_rate)), sample_rate=data.sample_rate,
                         num_speakers=len(labels), speed_factors=tuple(data.speed_perturb),
                         augmenter=_make_augmenter(config))
    per_step = data.batch_size * process.size
    steps_per_epoch = tc.steps_per_epoch or num_items // per_step
    if steps_per_epoch < 1:
        raise TrainingError(f"{config.source}: data.batch_size: {num_items} utterances do not fill one step of "
                            f"{data.batch_size} x {process.size} process(es); lower data.batch_size")
    total_steps = steps_per_epoch * tc.epochs
    last_step = min(total_steps, tc.max_steps or total_steps)

    # ---- model, loss, optimizer
    torch.manual_seed(tc.seed)
    model = ReDimNet(config.model_config())
    loss = make_loss(config.loss, model.embed_dim, maker.num_classes)
    if config.model.init_from and not (resume and existing):
        _init_weights(model, loss, config.model.init_from, config, say)
    classifier = SpeakerClassifier(model, loss).to(process.device)
    opt = config.optimizer
    optimizer = torch.optim.SGD(classifier.parameters(), lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                                weight_decay=opt.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if tc.precision == "fp16" else None
    lr_at = WarmupExponentialLR(opt.lr, opt.final_lr, opt.warmup_epochs, tc.epochs, opt.warm_from_zero)
    lo = config.loss
    margin_at = MarginSchedule(lo.initial_margin, lo.margin, lo.margin_increase_start_epoch, lo.margin_fix_epoch,
                               lo.margin_increase)
    torch.manual_seed(tc.seed + 1 + 1000 * process.rank)  # per-process randomness (SpecAugment, dropout)

    step, bad, attempted = 0, 0, 0
    if resume and existing:
        state = None
        for path in reversed(existing):
            try:
                state = load_training_state(path)
                break
            except RedimnetError as error:
                say(f"warning: skipping unreadable {path.name}: {error}")
        if state is None:
            raise TrainingError(f"no readable training state in {ckpt_dir}")
        if state["model_config"] != model.config.to_dict():
            raise TrainingError(f"{config.source}: the model options differ from the run in {out} "
                                "(model.preset / model.overrides / augment.spec_augment); resume with the same config")
        if state["num_classes"] != maker.num_classes or state["steps_per_epoch"] != steps_per_epoch:
            raise TrainingError(f"{config.source}: the data differ from the run in {out} ({state['num_classes']} "
                                f"classes and {state['steps_per_epoch']} steps per epoch there, {maker.num_classes} "
                                f"and {steps_per_epoch} now); resume with the same lists and batch size")
        model.load_state_dict(state["model"])
        loss.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, bad, attempted = state["step"], state["bad_audio"], state["attempted"]
        rng = state["rng"][process.rank] if process.rank < len(state["rng"]) else None
        if rng is not None:
            restore_rng_states(rng)
        say(f"resuming {out} at step {step} (epoch {step / steps_per_epoch:.2f})")
    elif resume:
        say(f"no training state in {ckpt_dir}; starting from step 0")

    if process.is_main:
        out.mkdir(parents=True, exist_ok=True)
        import yaml
        (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
        if step == 0 and (out / "train_log.csv").exists():
            (out / "train_log.csv").unlink()
    wrapped: nn.Module = classifier
    if process.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            classifier, device_ids=[process.device.index] if process.device.type == "cuda" else None)
    autocast = _autocast_factory(tc.precision, process.device)
    say(f"training {config.model.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters) on "
        f"{num_items} utterances, {len(labels)} speakers x {1 + len(data.speed_perturb)} speeds = "
        f"{maker.num_classes} classes; {steps_per_epoch} steps/epoch x {tc.epochs} epochs "
        f"({process.size} process(es), {process.device.type})")

    def save(step_done: int):
        if process.is_main:
            states = _all_rng_states(process)
            save_training_state(ckpt_dir / f"state_step{step_done:08d}.pt", {
                "step": step_done, "model": model.state_dict(), "loss": loss.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "rng": states, "bad_audio": bad, "attempted": attempted, "num_classes": maker.num_classes,
                "steps_per_epoch": steps_per_epoch, "model_config": model.config.to_dict(),
                "config": config.to_dict(), "speakers": sorted(labels)})
            save_checkpoint(model, ckpt_dir / f"model_step{step_done:08d}.pt")
            prune(ckpt_dir, tc.keep_checkpoints)
        else:
            _all_rng_states(process)
        _barrier(process)

    result = TrainingResult(out, step, None, None, bad_audio=bad)
    if process.is_main and tc.progress:
        from tqdm import tqdm
        progress = tqdm(total=last_step, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)
    rows: List[dict] = []
    keep_until = step if step > 0 else None
    window = {"loss": 0.0, "correct": 0.0, "count": 0.0, "grad": 0.0, "steps": 0, "start": time.time()}
    classifier.train()
    if config.validation.trials and step == 0:
        if process.is_main:
            result.initial_validation_eer = validation_eer(
                model, config.validation.trials, config.validation.audio_dir, data.sample_rate,
                config.validation.max_seconds, process.device)
            _append_validation(out / "validation.csv", 0, result.initial_validation_eer)
            say(f"step 0 (untrained): validation EER {100 * result.initial_validation_eer:.2f} %")
        _barrier(process)
    try:
        while step < last_step:
            epoch = step // steps_per_epoch
            loader = _make_loader(config, utterances, labels, maker, process, epoch, step - epoch * steps_per_epoch,
                                  steps_per_epoch)
            for batch in loader:
                epoch_float = step / steps_per_epoch
                lr, margin = lr_at(epoch_float), margin_at(epoch_float)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss.margin = margin
                wave = batch["wave"].to(process.device, non_blocking=True)
                target = batch["label"].to(process.device, non_blocking=True)
                value, scores = wrapped(wave, target, autocast)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(value).backward()
                    scaler.unscale_(optimizer)
                else:
                    value.backward()
                grad_norm = (float(nn.utils.clip_grad_norm_(classifier.parameters(), tc.grad_clip))
                             if tc.grad_clip else math.nan)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                step += 1
                # bookkeeping
                failed, tried = _all_sum([batch["failed"], batch["attempted"]], process)
                bad, attempted = bad + int(failed), attempted + int(tried)
                if batch["failed_paths"] and process.is_main:
                    for text in batch["failed_paths"][:3]:
                        say(f"warning: skipped unreadable audio: {text}")
                if bad and attempted >= min(1000, num_items) and bad / attempted > data.max_bad_fraction:
                    raise TrainingError(
                        f"{bad} of {attempted} audio reads failed ({100 * bad / attempted:.1f} %), more than "
                        f"data.max_bad_fraction = {data.max_bad_fraction} in {config.source}; fix or remove the "
                        "unreadable files (see the warnings above) or raise data.max_bad_fraction")
                window["loss"] += float(value.detach()) * len(target)
                window["correct"] += float((scores.argmax(dim=1) == target).sum())
                window["count"] += len(target)
                window["grad"] += 0.0 if math.isnan(grad_norm) else grad_norm
                window["steps"] += 1
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{float(value.detach()):.3f}", lr=f"{lr:.2e}", m=f"{margin:.3f}")
                if step % tc.log_every == 0 or step == last_step:
                    sums = _all_sum([window["loss"], window["correct"], window["count"]], process)
                    elapsed = max(time.time() - window["start"], 1e-9)
                    row = {"step": step, "epoch": round(step / steps_per_epoch, 4),
                           "loss": round(sums[0] / sums[2], 5), "accuracy": round(sums[1] / sums[2], 5),
                           "margin": round(margin, 5), "lr": f"{lr:.6g}",
                           "grad_norm": round(window["grad"] / window["steps"], 4), "bad_audio": bad,
                           "examples_per_s": round(sums[2] / elapsed, 1)}
                    result.last_loss, result.last_accuracy = row["loss"], row["accuracy"]
                    result.log_rows.append(row)
                    rows.append(row)
                    if process.is_main:
                        _write_log_rows(out / "train_log.csv", rows, keep_until)
                        keep_until, rows = None, []
                    window = {"loss": 0.0, "correct": 0.0, "count": 0.0, "grad": 0.0, "steps": 0,
                              "start": time.time()}
                end_of_epoch = step % steps_per_epoch == 0
                if step % tc.checkpoint_every == 0 or end_of_epoch or step == last_step:
                    save(step)
                if config.validation.trials and (step % config.validation.every == 0 or step == last_step):
                    if process.is_main:
                        value_eer = validation_eer(model, config.validation.trials, config.validation.audio_dir,
                                                   data.sample_rate, config.validation.max_seconds, process.device)
                        result.validation_eer = value_eer
                        _append_validation(out / "validation.csv", step, value_eer)
                        say(f"step {step}: validation EER {100 * value_eer:.2f} %")
                    _barrier(process)
                if step >= last_step or end_of_epoch:
                    break
    finally:
        if progress is not None:
            progress.close()
    result.steps, result.bad_audio = step, bad
    if process.is_main:
        result.final_model = Path(save_checkpoint(model, out / "final.pt"))
        if tc.average_last:
            snapshots = model_snapshots(ckpt_dir)[-tc.average_last:]
            result.averaged_model = average_checkpoints(snapshots, out / "model_avg.pt")
        say(f"done: {step} steps; final model {result.final_model}"
            + (f", average of {len(snapshots)} snapshots {result.averaged_model}" if tc.average_last else ""))
    _barrier(process)
    return result


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


def _make_loader(config: TrainingConfig, utterances, labels, maker, process: Process, epoch: int, start_step: int,
                 steps_per_epoch: int) -> torch.utils.data.DataLoader:
    data, seed = config.data, config.train.seed
    # The loader's own generator seeds its workers, so the global RNG is left untouched.
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    common = dict(batch_size=data.batch_size, collate_fn=collate_examples, num_workers=data.num_workers,
                  pin_memory=process.device.type == "cuda", drop_last=True, generator=generator,
                  persistent_workers=False)
    if data.num_workers > 0:
        common["prefetch_factor"] = 2
    if data.shards:
        dataset = ShardDataset(data.shards, labels, maker, seed, data.batch_size, process.rank, process.size,
                               data.shuffle_buffer)
        dataset.set_epoch(epoch, start_step)
        return torch.utils.data.DataLoader(dataset, **common)
    dataset = CropDataset(utterances, labels, maker, seed)
    sampler = EpochSampler(len(dataset), data.batch_size, steps_per_epoch, seed, epoch, process.rank,
                           process.size, start_step)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, **common)
