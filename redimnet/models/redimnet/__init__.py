"""The network: front end, backbone, pooling and head."""

from .backbone import Backbone
from .network import ReDimNet, WaveformEmbedder
from .stage import Stage

__all__ = ["Backbone", "ReDimNet", "Stage", "WaveformEmbedder"]
