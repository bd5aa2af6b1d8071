"""Regenerate the example speech shipped in ``redimnet/examples`` (used by ``redimnet demo``).

Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``) and the package's
own dependencies (soundfile, soxr). Each utterance is synthesised with one of espeak-ng's built-in
formant voices (no MBROLA voices, which carry their own licence), resampled to 16 kHz and written as
16-bit mono FLAC. The voices and texts are listed in ``redimnet/examples/__init__.py``; the texts
were written for this project.

    python scripts/make_demo_audio.py            # rewrites redimnet/examples/*.flac

Output may differ slightly between espeak-ng versions (the shipped files were made with 1.51).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from redimnet.examples import SPEAKERS, UTTERANCES

OUTPUT = Path(__file__).resolve().parents[1] / "redimnet" / "examples"


def synthesise(arguments, text: str) -> np.ndarray:
    """espeak-ng's output for ``text`` as a 16 kHz float32 waveform."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "out.wav"
        subprocess.run(["espeak-ng", *arguments, "-w", str(wav), text], check=True)
        wave, rate = sf.read(wav, dtype="float32")
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    return soxr.resample(wave, rate, 16000).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help=f"folder (default {OUTPUT})")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, (speaker, text) in UTTERANCES.items():
        wave = synthesise(SPEAKERS[speaker], text)
        wave = 0.5 * wave / max(1e-6, float(np.abs(wave).max()))  # same level for every file
        path = args.output / f"{name}.flac"
        sf.write(path, wave, 16000, format="FLAC", subtype="PCM_16")
        print(f"{path}: {len(wave) / 16000:.2f} s, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
