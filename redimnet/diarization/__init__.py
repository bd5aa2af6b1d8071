"""Voice activity detection, speaker diarization and its scoring.

* :mod:`.vad` -- where someone speaks (Silero VAD network or an energy detector);
* :mod:`.diarizer` -- :class:`Diarizer`: who speaks when, with ReDimNet window embeddings;
* :mod:`.clustering` -- spectral (eigengap) and agglomerative clustering that scale to hours;
* :mod:`.vbx` -- VBx, Bayesian HMM clustering with the model's PLDA back-end;
* :mod:`.der` -- diarization error rate with collar and overlap options;
* :mod:`.segments` -- :class:`Segment` and strict RTTM reading/writing;
* :mod:`.plot` -- timeline figures.

See ``docs/diarization.md``.
"""

from ..audio.stream import AudioSource
from .clustering import AgglomerativeClustering, Clustering, Clusters, SpectralClustering
from .der import DERScore, diarization_error
from .diarizer import Diarization, Diarizer
from .segments import RTTMError, Segment, read_rttm, write_rttm
from .vad import EnergyVAD, OracleVAD, SileroVAD, VoiceActivityDetector, make_vad
from .vbx import VBxClustering

__all__ = [
    "AgglomerativeClustering",
    "AudioSource",
    "Clustering",
    "Clusters",
    "DERScore",
    "Diarization",
    "Diarizer",
    "EnergyVAD",
    "OracleVAD",
    "RTTMError",
    "Segment",
    "SileroVAD",
    "SpectralClustering",
    "VBxClustering",
    "VoiceActivityDetector",
    "diarization_error",
    "make_vad",
    "read_rttm",
    "write_rttm",
]
