"""Validation during training: the EER of the model on a trial list, scored as ``redimnet eval`` scores.

The utterances go through the embedding pipeline (:mod:`redimnet.embedding.pipeline`),
and the trials through the evaluation functions ``redimnet eval`` uses: the trial
index (:func:`redimnet.evaluation.trials.index_trials`), the cosine scoring recipe
(:class:`redimnet.evaluation.recipe.ScoringRecipe`) and the metrics
(:func:`redimnet.evaluation.metrics.compute_metrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, cast

import numpy as np
import torch

from ..audio.read import AudioError
from ..embedding.embedder import minimum_samples
from ..embedding.pipeline import EmbeddingPipeline, Windowing
from ..evaluation.metrics import compute_metrics
from ..evaluation.recipe import ScoringRecipe
from ..evaluation.trials import EmbeddingIndex, index_trials, read_trials


def validation_eer(
    model: torch.nn.Module,
    trials_path: str,
    audio_dir: str,
    sample_rate: int,
    max_seconds: Optional[float],
    device: torch.device,
) -> float:
    """EER (fraction) of cosine scores of the model's embeddings on a trial list.

    An utterance longer than ``max_seconds`` is embedded as the mean of windows of
    that length.  The model's training mode is restored afterwards.  Raises
    ``AudioError`` naming the files that cannot be embedded.
    """
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
    matrix = np.stack([rows[i] for i in range(len(wanted))])
    indexed = index_trials(trials, EmbeddingIndex(wanted), embeddings_name="the validation embeddings")
    scores = ScoringRecipe().scorer(matrix)(indexed.enroll_rows, indexed.test_rows)
    return float(compute_metrics(scores, indexed.labels).eer)
