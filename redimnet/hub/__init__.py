"""Named models and published weights.

* :mod:`.registry` -- the table of architectures and weight files, :func:`~.registry.build`;
* :mod:`.pretrained` -- download, cache and verify weight files, load published models.
"""
