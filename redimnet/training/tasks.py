"""What the training loop trains: a *task* for each kind of model.

The loop (:mod:`redimnet.training.trainer`: epochs, steps, skipped non-finite
steps, log rows, training states and resuming, the final model) is the same for
every kind of model.  A task supplies what is particular to one kind, always with
the same methods:

* :meth:`read_data` -- read the training data; the number of examples per epoch;
* :meth:`build` -- the network, its loss, the module trained (both, for DDP) and the optimizer;
* :meth:`margin_schedule` -- a margin schedule for the loss, or None;
* :meth:`loader` -- the batches of one epoch (this process's share);
* :meth:`step` -- one batch through the module: ``(loss, correct, count)`` for the log's accuracy;
* :meth:`describe` -- the line the run starts with;
* :meth:`state` / :meth:`check_state` -- what a training state records about the data, and the
  check that a resumed run has the same;
* :meth:`save_model` / :meth:`average` -- the model file format (final model, snapshots, average);
* :attr:`validates` / :meth:`validate` -- validation, when configured.

:class:`SpeakerTask` trains speaker-embedding models (a :class:`~redimnet.training.config.TrainingConfig`);
:class:`redimnet.training.segmentation.SegmentationTask` the segmentation network (a
:class:`~redimnet.training.segmentation.SegmentationTrainingConfig`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, cast

import torch
from torch import nn

from ..errors import RedimnetError, TrainingError
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..models.families import build_model
from ..models.redimnet import ReDimNet
from .checkpointing import average_checkpoints
from .config import SegmentationTrainingConfig, TrainingConfig
from .data import ExampleMaker, speaker_labels
from .loaders import make_augmenter, make_loader, read_training_list
from .losses import make_loss
from .process import Process
from .schedulers import MarginSchedule
from .state import TrainingState
from .validation import validation_eer


class SpeakerClassifier(nn.Module):
    """The embedding model and the loss that owns the class weights, as one module (for DDP)."""

    def __init__(self, model: ReDimNet, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, wave: torch.Tensor, labels: torch.Tensor, autocast: Callable):
        with autocast():
            embeddings = self.model(wave)
        return self.loss(embeddings.float(), labels)


class SpeakerTask:
    """Training a speaker-embedding model: classification of the training speakers with a margin loss."""

    item_name = "utterances"
    validation_name = "EER"
    validation_column = "eer"

    def __init__(self, config: TrainingConfig):
        self.config = config
        self.utterances: Optional[list] = None
        self.labels: Dict[str, int] = {}
        self.maker: Optional[ExampleMaker] = None

    # --- data
    def read_data(self, process: Process) -> int:
        """Read the training list; the number of utterances."""
        config, data = self.config, self.config.data
        self.utterances, num_items, speakers = read_training_list(config)
        self.labels = speaker_labels(speakers)
        self.maker = ExampleMaker(
            crop_samples=int(round(data.crop_seconds * data.sample_rate)),
            sample_rate=data.sample_rate,
            num_speakers=len(self.labels),
            speed_factors=tuple(data.speed_perturb),
            augmenter=make_augmenter(config),
        )
        return num_items

    @property
    def num_classes(self) -> int:
        return cast(ExampleMaker, self.maker).num_classes

    def loader(self, process: Process, epoch: int, start_step: int, steps_per_epoch: int):
        return make_loader(
            self.config, self.utterances, self.labels, self.maker, process, epoch, start_step, steps_per_epoch
        )

    # --- model
    def build(self, say: Callable, init_weights: bool) -> Tuple[nn.Module, nn.Module, nn.Module, torch.optim.Optimizer]:
        """The model, its loss (which owns the class weights), the module trained and the optimizer (SGD)."""
        config, opt = self.config, self.config.optimizer
        model = build_model(config.model_config())
        loss = make_loss(config.loss, model.embed_dim, self.num_classes)
        if config.model.init_from and init_weights:
            self._init_weights(model, loss, config.model.init_from, say)
        module = SpeakerClassifier(model, loss)
        optimizer = torch.optim.SGD(
            module.parameters(), lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay
        )
        return model, loss, module, optimizer

    def _init_weights(self, model: nn.Module, loss: nn.Module, path: str, log: Callable):
        """Load ``model.init_from``: a training state (model + loss) or a release checkpoint (model only)."""
        source_name = self.config.source
        try:
            state: Optional[TrainingState] = TrainingState.load(path)
        except RedimnetError:
            state = None
        if state is not None:
            try:
                model.load_state_dict(state.model)
            except (RuntimeError, KeyError) as error:
                raise TrainingError(
                    f"{source_name}: model.init_from: the model in {path} has a different "
                    f"architecture ({str(error).splitlines()[0]})"
                ) from None
            try:
                loss.load_state_dict(state.loss)
                log(f"initialised model and loss weights from training state {path}")
            except (RuntimeError, KeyError) as error:
                raise TrainingError(
                    f"{source_name}: model.init_from: the loss weights in {path} do not fit "
                    f"this config's loss ({str(error).splitlines()[0]}); the number of speakers, "
                    "speed factors, loss.type and loss.subcenters must match"
                ) from None
            return
        source = load_checkpoint(path)
        try:
            model.load_state_dict(source.state_dict())
        except RuntimeError as error:
            raise TrainingError(
                f"{source_name}: model.init_from: {path} holds a different architecture ({str(error).splitlines()[0]})"
            ) from None
        log(f"initialised model weights from {path} (the loss weights start fresh)")

    def margin_schedule(self) -> Optional[MarginSchedule]:
        lo = self.config.loss
        return MarginSchedule(
            lo.initial_margin, lo.margin, lo.margin_increase_start_epoch, lo.margin_fix_epoch, lo.margin_increase
        )

    def step(self, module: nn.Module, batch: dict, device: torch.device, autocast: Callable):
        """``(loss, correct, count)``: the loss and the classification accuracy of the batch's crops."""
        wave = batch["wave"].to(device, non_blocking=True)
        target = batch["label"].to(device, non_blocking=True)
        value, scores = module(wave, target, autocast)
        return value, (scores.detach().argmax(dim=1) == target).sum(), len(target)

    def describe(self, model: nn.Module, num_items: int) -> str:
        data = self.config.data
        return (
            f"training {self.config.model.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
            f"parameters) on {num_items} utterances, {len(self.labels)} speakers x "
            f"{1 + len(data.speed_perturb)} speeds = {self.num_classes} classes"
        )

    # --- states and files
    def state(self) -> dict:
        return {"num_classes": self.num_classes, "speakers": sorted(self.labels)}

    def check_state(self, state: TrainingState, steps_per_epoch: int, out: Path) -> None:
        if state.num_classes != self.num_classes or state.steps_per_epoch != steps_per_epoch:
            raise TrainingError(
                f"{self.config.source}: the data differ from the run in {out} ({state.num_classes} "
                f"classes and {state.steps_per_epoch} steps per epoch there, {self.num_classes} "
                f"and {steps_per_epoch} now); resume with the same lists and batch size"
            )

    @staticmethod
    def save_model(model: nn.Module, path: Path) -> Path:
        return Path(save_checkpoint(cast(ReDimNet, model), path))

    @staticmethod
    def average(snapshots: List[Path], path: Path) -> Path:
        return average_checkpoints(snapshots, path)

    # --- validation
    @property
    def validates(self) -> bool:
        return bool(self.config.validation.trials)

    def validate(self, model: nn.Module, device: torch.device) -> float:
        """EER on the validation trial list."""
        v = self.config.validation
        return validation_eer(
            model, cast(str, v.trials), cast(str, v.audio_dir), self.config.data.sample_rate, v.max_seconds, device
        )


def make_task(config):
    """The task a configuration trains: :class:`SpeakerTask`, or the segmentation task."""
    from .segmentation import SegmentationTask

    if isinstance(config, SegmentationTrainingConfig):
        return SegmentationTask(config)
    return SpeakerTask(config)
