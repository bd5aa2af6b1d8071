"""Powerset classes: the speech of a few local speakers as one class per frame, overlap included.

A chunk of a recording has ``speakers`` *local* speakers (numbered in the
chunk only; the same person may be number 0 in one chunk and 2 in the next).
At most ``max_simultaneous`` of them speak at once.  Each frame then falls
into exactly one class: one subset of the local speakers of at most
``max_simultaneous`` members.  The classes are ordered by size, then
lexicographically; with 3 speakers and pairs::

    0: nobody   1: {0}   2: {1}   3: {2}   4: {0, 1}   5: {0, 2}   6: {1, 2}

A segmentation network predicts one distribution over these classes per
frame (a softmax), so "two speakers at once" is an ordinary class rather than
two independent decisions (the formulation of pyannote.audio 3.x, Plaquet and
Bredin, Interspeech 2023).

:class:`Powerset` converts between classes and multi-label activity
(``[..., speakers]`` booleans) in numpy; the training loss (which tries every
order of the local speakers) is in :mod:`redimnet.training.segmentation`.
"""

import itertools
from typing import List, Optional, Tuple

import numpy as np

from ..errors import InvalidArgumentError


class Powerset:
    """The classes of ``speakers`` local speakers with at most ``max_simultaneous`` at a time."""

    def __init__(self, speakers: int = 3, max_simultaneous: int = 2):
        if not 1 <= speakers <= 8:
            raise InvalidArgumentError(f"a chunk needs 1 to 8 local speakers, got {speakers}")
        if not 1 <= max_simultaneous <= speakers:
            raise InvalidArgumentError(
                f"max_simultaneous must be between 1 and the number of local speakers ({speakers}), "
                f"got {max_simultaneous}"
            )
        self.speakers = int(speakers)
        self.max_simultaneous = int(max_simultaneous)
        self.classes: List[Tuple[int, ...]] = [
            subset for size in range(max_simultaneous + 1) for subset in itertools.combinations(range(speakers), size)
        ]
        # [classes, speakers]: which local speakers each class holds
        self.mapping = np.zeros((len(self.classes), speakers), dtype=np.float32)
        for index, subset in enumerate(self.classes):
            self.mapping[index, list(subset)] = 1.0
        # class of each bit mask of active speakers (-1: more than max_simultaneous at once)
        self.class_of_mask = np.full(1 << speakers, -1, dtype=np.int64)
        for index, subset in enumerate(self.classes):
            self.class_of_mask[sum(1 << s for s in subset)] = index
        self.sizes = self.mapping.sum(axis=1).astype(np.int64)  # speakers in each class

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_multilabel(self, classes: np.ndarray) -> np.ndarray:
        """Activity ``[..., speakers]`` (bool) of class indices ``[...]``."""
        return self.mapping[np.asarray(classes, dtype=np.int64)] > 0.5

    def from_multilabel(self, activity: np.ndarray) -> np.ndarray:
        """Class indices ``[...]`` of activity ``[..., speakers]``; -1 where too many speak at once."""
        activity = np.asarray(activity) > 0
        if activity.shape[-1] != self.speakers:
            raise InvalidArgumentError(
                f"activity has {activity.shape[-1]} speakers per frame, the powerset {self.speakers}"
            )
        masks = (activity.astype(np.int64) << np.arange(self.speakers)).sum(axis=-1)
        return self.class_of_mask[masks]

    def marginals(self, probabilities: np.ndarray) -> np.ndarray:
        """Each local speaker's probability of speaking ``[..., speakers]`` from ``[..., classes]`` probabilities."""
        return np.asarray(probabilities, dtype=np.float32) @ self.mapping

    def decide(self, probabilities: np.ndarray, overlap_threshold: Optional[float] = None) -> np.ndarray:
        """The class of each frame ``[...]`` (int64) from ``[..., classes]`` probabilities.

        ``overlap_threshold`` None: the most probable class.  A number: the frame is overlapped
        (the most probable class of two or more speakers) only where the classes of two or more
        speakers together have at least that probability, otherwise the most probable class of
        at most one speaker; a higher threshold trades missed overlap for false overlap.
        """
        probabilities = np.asarray(probabilities)
        overlapping = self.sizes >= 2
        if overlap_threshold is None or not overlapping.any():
            return probabilities.argmax(axis=-1)
        several = np.where(overlapping, probabilities, -1.0).argmax(axis=-1)
        at_most_one = np.where(overlapping, -1.0, probabilities).argmax(axis=-1)
        return np.where(self.overlap_probability(probabilities) >= overlap_threshold, several, at_most_one)

    def overlap_probability(self, probabilities: np.ndarray) -> np.ndarray:
        """The probability that two or more local speakers speak ``[...]``: the classes of two or more
        speakers together, from ``[..., classes]`` probabilities."""
        return np.asarray(probabilities)[..., self.sizes >= 2].sum(axis=-1)

    def permutations(self) -> np.ndarray:
        """``[speakers!, speakers]``: every order of the local speakers."""
        return np.array(list(itertools.permutations(range(self.speakers))), dtype=np.int64)
