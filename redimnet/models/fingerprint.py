"""The model fingerprint: which model made a set of embeddings (embeddings of different models do not mix).

Speaker stores, embedding files, calibrations and the int8 cache record it; scoring refuses to
compare embeddings, enrolments or calibrations made with another model.
"""

import hashlib
import json

__all__ = ["model_fingerprint"]


def model_fingerprint(model) -> str:
    """A short hash of a model's configuration and weights (embeddings of different models do not mix)."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]
