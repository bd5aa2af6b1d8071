"""Audio in: reading and decoding files, resampling to the one sample rate, the silence rule, lists of inputs.

* :mod:`.samples` -- samples in memory to the network's waveform (float, mono, resampling, trimming) and the
  rules every input follows (:func:`check_samples`, :func:`check_signal_level`, :func:`prepare_waveform`);
* :mod:`.read` -- files and bytes to 16 kHz mono float32 (:func:`read_audio`; :class:`AudioFile` and
  :class:`AudioBytes` (an upload), both an :class:`AudioStream`, for block-by-block reading),
  :func:`check_header` (what a header may claim), :func:`check_samples` (the one input policy for samples),
  :func:`check_signal_level` (the one silence rule);
* :mod:`.stream` -- :class:`AudioSource`, a recording read in blocks any number of times;
* :mod:`.lists` -- Kaldi-style two-column lists (``wav.scp``, ``utt2spk``).

:data:`TARGET_SAMPLE_RATE` (16 kHz) is the sample rate of every waveform the package passes on.
"""

from .read import (
    SILENCE_FLOOR_DBFS,
    TARGET_SAMPLE_RATE,
    AudioBytes,
    AudioError,
    AudioFile,
    AudioStream,
    SignalLevel,
    audio_extensions,
    audio_info,
    check_header,
    check_samples,
    check_signal_level,
    decode_audio_bytes,
    iter_inputs,
    list_audio_files,
    prepare_waveform,
    read_audio,
    read_scp,
    resample,
    to_float32,
    to_mono,
    trim_silence,
)
from .stream import AudioSource

__all__ = [
    "SILENCE_FLOOR_DBFS",
    "TARGET_SAMPLE_RATE",
    "AudioBytes",
    "AudioError",
    "AudioFile",
    "AudioSource",
    "AudioStream",
    "SignalLevel",
    "audio_extensions",
    "audio_info",
    "check_header",
    "check_samples",
    "check_signal_level",
    "decode_audio_bytes",
    "iter_inputs",
    "list_audio_files",
    "prepare_waveform",
    "read_audio",
    "read_scp",
    "resample",
    "to_float32",
    "to_mono",
    "trim_silence",
]
