"""A few seconds of example speech shipped with the package (used by ``redimnet demo``).

Three short English utterances by two synthetic "speakers", made with the espeak-ng speech
synthesiser (see ``README.md`` in this folder for how and under what terms, and
``scripts/make_demo_audio.py`` in the source repository to regenerate them): 16 kHz mono FLAC.

>>> from redimnet.examples import example_files
>>> sorted(example_files())
['speaker_a_1', 'speaker_a_2', 'speaker_b_1']
"""

from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Dict, List, Tuple

__all__ = ["SPEAKERS", "UTTERANCES", "example_files", "example_pairs"]

# How each synthetic speaker was made: espeak-ng's American English voice with one of its built-in
# variants (lower male / higher female formants), pitch (-p) and speed (-s).
SPEAKERS: Dict[str, List[str]] = {
    "speaker_a": ["-v", "en-us+m3", "-p", "35", "-s", "150"],
    "speaker_b": ["-v", "en-us+f4", "-p", "65", "-s", "165"],
}
# Utterance name -> (speaker, text). The texts were written for this project.
UTTERANCES: Dict[str, Tuple[str, str]] = {
    "speaker_a_1": ("speaker_a", "The garden behind the old station fills with birds every spring morning."),
    "speaker_a_2": ("speaker_a", "Please bring two blue folders and a pencil to the meeting on Thursday."),
    "speaker_b_1": ("speaker_b", "A quiet river runs past the village, under seven narrow stone bridges."),
}


def example_files() -> Dict[str, Path]:
    """Utterance name -> path of its FLAC file, for every shipped example."""
    folder = resources.files(__name__)
    return {name: Path(str(folder.joinpath(f"{name}.flac"))) for name in UTTERANCES}


def example_pairs() -> List[Tuple[str, str, bool]]:
    """Every pair of examples as ``(first, second, same_speaker)``."""
    return [(a, b, UTTERANCES[a][0] == UTTERANCES[b][0]) for a, b in combinations(sorted(UTTERANCES), 2)]
