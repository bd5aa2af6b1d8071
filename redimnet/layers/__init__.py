"""Building blocks of ReDimNet, one per module."""

from .channel_squeeze import ChannelSqueeze
from .classifier_head import ClassifierHead
from .convnext_block import ConvNeXtBlock
from .freq_se import FrequencySE
from .layer_norm import ChannelLayerNorm
from .pooling import ASTP, MHASTP, MQMHASTP, TAP, TSDP, TSTP, make_pooling
from .reshape import to_1d, to_2d
from .resnet_block import ResNetBlock
from .spec_augment import SpecAugment
from .stage_mixer import StageMixer
from .time_context import TimeContextBlock
from .transformer import TransformerLayer

__all__ = [
    "ASTP",
    "ChannelLayerNorm",
    "ChannelSqueeze",
    "ClassifierHead",
    "ConvNeXtBlock",
    "FrequencySE",
    "MHASTP",
    "MQMHASTP",
    "ResNetBlock",
    "SpecAugment",
    "StageMixer",
    "TAP",
    "TSDP",
    "TSTP",
    "TimeContextBlock",
    "TransformerLayer",
    "make_pooling",
    "to_1d",
    "to_2d",
]
