"""Private helpers shared by every layer (not part of the public API).

* :mod:`.fileio` -- atomic writes and small text files with clear errors;
* :mod:`.names` -- printable names and :func:`~.names.path_below`, the one check for paths made from user data;
* :mod:`.optional` -- optional dependencies with an ``install redimnet[extra]`` hint;
* :mod:`.threads` -- the thread policy of the command line;
* :mod:`.distributed` -- rank / world size of a ``torchrun`` job.
"""
