"""Ingest: discover, validate and catalogue CT series into a PHI-safe manifest.

Modules
-------
``stage``      :func:`~ctpheno.ingest.stage.run_ingest`, the stage entry point.
``discover``   walk inputs (local folders of any depth, files, fsspec URLs); header reading as Dask tasks.
``headers``    one file's header record (pydicom ``stop_before_pixels``; SimpleITK for volume files).
``catalog``    grouping into series, manifest / sources / failures rows, per-study selection.
``validate``   pure per-series checks producing the reason codes of ``reasons``.
``reasons``    the documented reason codes and their severities.
``pseudonym``  salted HMAC-SHA256 pseudonyms and the salt's resolution.
``clinical``   clinical table schema check, pseudonymisation and join report.
``phi``        :func:`~ctpheno.ingest.phi.find_phi`, the artifact scanner.
``idc``        offline Imaging Data Commons cohort query and s5cmd manifest.
``remote``     local / fsspec path helpers.

Pixel reading lives in :mod:`ctpheno.io.readers` (:func:`~ctpheno.io.readers.read_scan`).
"""
