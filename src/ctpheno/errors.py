"""Project exceptions for domain failures.

Bad *arguments* raise :class:`ValueError` / :class:`TypeError`; a scan that
cannot be processed raises one of these, and the orchestration layer records
it (scan id, stage, type, message) in ``failures.parquet`` while the run goes on.
"""

from __future__ import annotations


class CTPhenoError(Exception):
    """Base class of every domain failure raised by ctpheno."""


class ConfigError(CTPhenoError, ValueError):
    """A configuration file or override is invalid (names file, key and allowed values)."""


class UnreadableSeriesError(CTPhenoError):
    """A file or series could not be read or decoded."""


class InvalidSeriesError(CTPhenoError):
    """A series was read but is not usable (not CT, missing slices, tilted, ...)."""


class NotChestCTError(InvalidSeriesError):
    """The field of view does not contain the lungs."""


class EmptyLungMaskError(CTPhenoError):
    """Lung segmentation produced no (or an implausibly small) lung mask."""


class SegmentationQCError(CTPhenoError):
    """Lung segmentation finished but failed a plausibility check."""


class ScanTooLargeError(CTPhenoError):
    """A scan needs more memory than one worker is allowed."""


class FeatureExtractionError(CTPhenoError):
    """A feature extractor (QCT, PyRadiomics, CNN) failed on one scan."""


class MissingExtraError(CTPhenoError, ImportError):
    """An optional dependency (a pip extra) is not installed."""

    def __init__(self, package: str, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the optional package {package!r}; install it with "
            f"`pip install 'ctpheno[{extra}]'`"
        )
        self.package = package
        self.extra = extra


class ClinicalTableError(CTPhenoError, ValueError):
    """The clinical table fails its schema (missing id column, duplicate ids, out-of-range values)."""


class WorkdirError(CTPhenoError):
    """The work directory cannot be used (it is a file, read-only, or cannot be created)."""


class NoInputFoundError(CTPhenoError):
    """Nothing to work on: the inputs hold no DICOM series or volume file."""
