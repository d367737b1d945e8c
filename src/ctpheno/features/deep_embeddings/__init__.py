"""3D CNN embeddings: self-supervised lung-patch encoder, pretrained I3ResNet, user checkpoints.

Public API (pure functions on arrays; torch imported lazily by the submodules):

* :func:`~.patches.lung_grid`, :func:`~.patches.grid_centres`, :func:`~.patches.cut_patches`
* :func:`~.ssl.train_encoder`, :func:`~.ssl.load_trained_encoder`
* :func:`~.extract.load_encoder`, :func:`~.extract.embed_lungs`
* :func:`~.pretrained.load_astra_encoder`, :func:`~.pretrained.embed_chest`
* :func:`~.stage.run_embeddings` (the Dask stage)
"""
