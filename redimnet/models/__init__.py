"""The networks: one package per model family, and what every family shares.

* :mod:`.redimnet` -- ReDimNet (IDRnD): configuration, key map of the original
  checkpoints, network (front end, backbone, stages, pooling);
* :mod:`.redimnet2` -- ReDimNet2 (PalabraAI), the same parts plus its presets;
* :mod:`.families` -- which family a checkpoint or a model belongs to, and that family's classes;
* :mod:`.checkpoint` -- reading and writing checkpoints in the original release format;
* :mod:`.complexity` -- parameter and multiply-accumulate counts.

Named architectures and published weights are in :mod:`redimnet.hub`.
"""
