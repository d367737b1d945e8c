"""Reconstruction-kernel classes from vendor + ConvolutionKernel: ``smooth | medium | sharp | unknown``.

Density (LAA-950, Perc15) is measured on the smoothest reconstruction of a study and airway
walls on the sharpest (COPDGene protocol, Regan et al., COPD 2010; the Chest Imaging Platform;
Gallardo-Estrella et al., Eur Radiol 2016: 7.7 +- 2.7 pp LAA-950 between the two in COPDGene).
The table :data:`KERNEL_RULES` maps each vendor's naming convention to a class; every entry
names where it comes from. Names no rule matches are ``unknown``: ingest then decides between
the series of a study by their measured noise texture (:func:`class_from_noise_texture`), and
the QCT stage reports the noise-decided class.

Sources (codes used in the table):

* ``siemens-guide``: Siemens syngo CT application guides: kernel = letter (B body, Br body
  regular, Bl body lung, Bv body vascular, Bf body, I iterative SAFIRE, Q/Qr ADMIRE, H head)
  + two digits that *rise with sharpness* (10-20 very smooth, 30-40 standard soft tissue,
  45-46 medium sharp, 50-60 sharp, 70-80 very sharp) + a letter for the mode (f, s, d, u).
* ``ge-guide``: GE LightSpeed / Revolution reference manuals: SOFT < STANDARD < DETAIL <
  CHEST < LUNG < BONE < BONEPLUS < EDGE (sharpness order), HD variants likewise.
* ``philips-guide``: Philips Brilliance / iCT application guides: A < B < C < D < E (body
  kernels, sharpness rising), L (lung), Y-series (YA..YF, sharp lung/bone enhancement).
* ``canon-guide``: Toshiba / Canon Aquilion reconstruction function tables: FC01-FC14 body
  (smooth), FC30-FC39 bone, FC50-FC59 lung, FC80-FC89 high-resolution bone (sharp).
* ``copdgene``: COPDGene protocol reconstructions (Regan et al. 2010): Siemens B31f (density) /
  B45f (airways), GE STANDARD / LUNG or BONE, Philips B / D-class, Toshiba FC01-FC13 / FC51.
* ``nlst``: NLST CT series as distributed (TCIA/IDC): soft-tissue B30f / STANDARD / C / FC10
  beside lung B50f / LUNG / BONE / D / FC51-FC53 reconstructions.
* ``lidc``: LIDC-IDRI-0314 (``../shared/data``): Philips ``D``, measured noise texture
  0.36 mm^-1 (between the synthetic smooth and medium kernels) and tracheal noise 55 HU at 1 mm.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

KernelClass = Literal["smooth", "medium", "sharp", "unknown"]
KERNEL_CLASSES: tuple[str, ...] = ("smooth", "medium", "sharp", "unknown")
DENSITY_RANK = {"smooth": 0, "medium": 1, "unknown": 2, "sharp": 3}
"""Preference for density measurement (lower first); ``unknown`` before ``sharp``."""
SHARPNESS_RANK = {"smooth": 0, "medium": 1, "unknown": 1, "sharp": 2}
"""Sharpness for the airway series choice."""


@dataclass(frozen=True)
class KernelRule:
    """One row of the kernel table: vendor pattern, kernel pattern, class (or numeric bands), source."""

    vendor: str
    """Regular expression on the upper-cased Manufacturer (``""`` = any vendor)."""
    kernel: str
    """Regular expression on the upper-cased first ConvolutionKernel value (full match)."""
    kernel_class: str
    """``smooth | medium | sharp``, or ``by_number`` (class from the first number group)."""
    source: str
    """Where the entry comes from (codes in the module docstring)."""
    bands: tuple[tuple[int, int, str], ...] = ()
    """For ``by_number``: (low, high, class) inclusive ranges; numbers outside every band are unknown."""


SIEMENS_BANDS = ((1, 40, "smooth"), (41, 49, "medium"), (50, 99, "sharp"))
CANON_BANDS = ((1, 14, "smooth"), (30, 39, "sharp"), (50, 59, "sharp"), (80, 89, "sharp"))

KERNEL_RULES: tuple[KernelRule, ...] = (
    KernelRule("SIEMENS", r"(?:B|BR|BL|BV|BF|I|Q|QR|H|HR|T|D)(\d{2})[A-Z]?", "by_number", "siemens-guide",
               SIEMENS_BANDS),
    KernelRule("GE", r"(?:HD[ _]?)?(?:SOFT|STANDARD|STND|SOFT TISSUE)", "smooth", "ge-guide"),
    KernelRule("GE", r"(?:HD[ _]?)?(?:DETAIL|CHEST)", "medium", "ge-guide"),
    KernelRule("GE", r"(?:HD[ _]?)?(?:LUNG|BONE|BONE ?PLUS|EDGE)", "sharp", "ge-guide"),
    KernelRule("PHILIPS", r"[AB]", "smooth", "philips-guide"),
    KernelRule("PHILIPS", r"C", "medium", "philips-guide"),
    KernelRule("PHILIPS", r"[DEL]|Y[A-F]", "sharp", "philips-guide"),
    KernelRule("TOSHIBA|CANON", r"FC(\d{2})", "by_number", "canon-guide", CANON_BANDS),
    # vendor missing or unexpected: names that only one vendor uses
    KernelRule("", r"B(\d{2})[FS]", "by_number", "siemens-guide", SIEMENS_BANDS),
    KernelRule("", r"FC(\d{2})", "by_number", "canon-guide", CANON_BANDS),
    KernelRule("", r"STANDARD|SOFT", "smooth", "ge-guide"),
    KernelRule("", r"LUNG|BONE|BONEPLUS|EDGE", "sharp", "ge-guide"),
)
"""The kernel table, first match wins (see :func:`classify_kernel`)."""


def _first_value(kernel: str) -> str:
    return next((v.strip().upper() for v in str(kernel).split("\\") if v.strip()), "")


def classify_kernel(manufacturer: str | None, kernel: str | None) -> tuple[str, str]:
    """``(kernel_class, source)`` of a ConvolutionKernel value; ``("unknown", "")`` when no rule matches.

    Multi-valued kernels (``"I30f\\\\3"``, ``"['Br40d', '3']"``-style joins) use their first value.

    >>> classify_kernel("SIEMENS", "B31f")
    ('smooth', 'siemens-guide')
    >>> classify_kernel("GE MEDICAL SYSTEMS", "LUNG")
    ('sharp', 'ge-guide')
    """
    value = _first_value(kernel or "")
    vendor = str(manufacturer or "").upper()
    if not value:
        return "unknown", ""
    for rule in KERNEL_RULES:
        if rule.vendor and not re.search(rule.vendor, vendor):
            continue
        m = re.fullmatch(rule.kernel, value)
        if m is None:
            continue
        if rule.kernel_class != "by_number":
            return rule.kernel_class, rule.source
        number = int(m.group(1))
        for lo, hi, cls in rule.bands:
            if lo <= number <= hi:
                return cls, rule.source
        return "unknown", rule.source
    return "unknown", ""


NOISE_FAV_SHARP_LPMM = 0.43
"""NPS mean frequency at and above which an unnamed kernel counts as sharp (mm^-1)."""
NOISE_FAV_SMOOTH_LPMM = 0.35
"""NPS mean frequency at and below which an unnamed kernel counts as smooth (mm^-1)."""
MIN_NYQUIST_LPMM = 0.5
"""Pixels coarser than 1 mm (Nyquist < 0.5 mm^-1) cannot show a sharp kernel's noise texture."""


def class_from_noise_texture(fav_lpmm: float, pixel_mm: float) -> str:
    """Kernel class from the measured noise texture (NPS mean frequency, Solomon et al. 2012).

    Measured at 0.7 mm pixels on the generator's kernels: smooth 0.32, medium 0.39, sharp 0.46
    mm^-1; the real Philips ``D`` scan (0.78 mm) 0.36 (docs/methods_features.md). Thresholds
    :data:`NOISE_FAV_SMOOTH_LPMM` / :data:`NOISE_FAV_SHARP_LPMM` lie between them. ``unknown``
    when not measured or when the pixels are too coarse to tell (the mean frequency is bounded by
    the Nyquist frequency).
    """
    if not math.isfinite(fav_lpmm) or 0.5 / float(pixel_mm) < MIN_NYQUIST_LPMM:
        return "unknown"
    if fav_lpmm >= NOISE_FAV_SHARP_LPMM:
        return "sharp"
    if fav_lpmm <= NOISE_FAV_SMOOTH_LPMM:
        return "smooth"
    return "medium"


def markdown_table() -> str:
    """The kernel table for the documentation."""
    rows = ["| vendor | kernel (regex) | class | source |", "|---|---|---|---|"]
    for r in KERNEL_RULES:
        cls = r.kernel_class if r.kernel_class != "by_number" else ", ".join(
            f"{lo}-{hi}: {c}" for lo, hi, c in r.bands)
        rows.append(f"| {r.vendor or 'any'} | `{r.kernel}` | {cls} | {r.source} |")
    return "\n".join(rows) + "\n"
