"""From audio to embeddings and back out.

* :mod:`.pipeline` -- the one embedding pipeline (read, resample, window, batch);
* :mod:`.embedder` -- :class:`~.embedder.Embedder`, a model with that pipeline;
* :mod:`.similarity` -- L2 normalisation and the one cosine score;
* :mod:`.io` -- embedding files (``.npz``, ``.npy`` folders, Kaldi ark/scp);
* :mod:`.export` -- ONNX and TorchScript export of the embedding model.
"""
