"""Diarization quality: the small ReDimNet shipped with the tests against the MFCC baseline.

``tests/data/diarization/redimnet_synthetic.pt`` was trained on synthetic speakers by the shipped
recipe (see ``tests/data/diarization/README.md``).  Here both systems run the same pipeline (energy
VAD, windows, spectral clustering, frame scoring) on freshly generated conversations of voices
neither has heard; only the window embeddings differ.  The network must make fewer errors with
the number of speakers estimated and with it given, and clearly fewer in all.
"""

from pathlib import Path

import pytest

import redimnet
from redimnet.diarization import Diarizer, EnergyVAD, SpectralClustering, read_rttm
from redimnet.diarization.baseline import MFCCStatsEmbedder
from redimnet.diarization.der import DERScore, diarization_error
from redimnet.testing.synth import generate_conversation

CHECKPOINT = Path(__file__).parent / "data" / "diarization" / "redimnet_synthetic.pt"
# (speakers, seed): conversations used nowhere else (the benchmark's seeds are 100 and up)
CONVERSATIONS = [(speakers, seed) for speakers in (2, 4, 6) for seed in (9301, 9302, 9303)]
SECONDS = 120.0


def test_shipped_checkpoint_is_small_and_loads():
    assert CHECKPOINT.stat().st_size < 1_000_000
    model = redimnet.load_checkpoint(CHECKPOINT)
    assert isinstance(model, redimnet.ReDimNet) and model.embed_dim == 64
    assert sum(p.numel() for p in model.parameters()) < 250_000


def _diarizer(embedder, standardise):
    clustering = SpectralClustering()
    clustering.standardise = standardise
    return Diarizer(embedder, vad=EnergyVAD(), clustering=clustering)


@pytest.mark.slow
def test_trained_redimnet_diarizes_clearly_better_than_the_mfcc_baseline(tmp_path, one_thread):
    systems = {
        "redimnet": _diarizer(redimnet.Embedder(redimnet.load_checkpoint(CHECKPOINT), device="cpu"), False),
        "mfcc": _diarizer(MFCCStatsEmbedder(), True),
    }
    totals = {(name, mode): DERScore() for name in systems for mode in ("estimated", "oracle")}
    for speakers, seed in CONVERSATIONS:
        path = tmp_path / f"conv-{speakers}-{seed}.wav"
        generate_conversation(path, speakers=speakers, seconds=SECONDS, seed=seed)
        reference = read_rttm(path.with_suffix(".rttm"))[path.stem]
        for name, diarizer in systems.items():
            totals[name, "estimated"] += diarization_error(reference, diarizer.diarize(path))
            totals[name, "oracle"] += diarization_error(reference, diarizer.diarize(path, num_speakers=speakers))
    report = {f"{name} {mode}": round(100 * score.der, 2) for (name, mode), score in totals.items()}
    print(f"\nDER % on {len(CONVERSATIONS)} synthetic conversations: {report}")
    # the same VAD on both sides: missed speech and false alarms are equal, the difference is confusion
    both = {name: totals[name, "estimated"].der + totals[name, "oracle"].der for name in systems}
    assert both["redimnet"] < 0.75 * both["mfcc"], report
    for mode in ("estimated", "oracle"):
        assert totals["redimnet", mode].der < totals["mfcc", mode].der, report
