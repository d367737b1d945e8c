"""Features stage: COPD quantitative CT metrics and PyRadiomics radiomics (CNN embeddings: ``deep_embeddings``).

Public API (import from the submodules; nothing heavy is imported here)::

    qct.qct_metrics(hu, labels, zones, spacing_mm, *, config, scan_id) -> DataFrame   # long by region
    qct.qct_metrics_dask(image, labels, zones, spacing_mm, *, config, scan_id)       # blockwise twin
    qct.lung_volume_ml / mld_hu / laa_pct / percentile_hu / hu_moments / laa950_upper_lower_ratio
    lac.lac_metrics(hu, mask, spacing_mm, *, fit_range_ml) -> dict                  # clusters, lac_d_950
    histogram.percentile_from_histogram(hist, q)                                    # == np.percentile
    radiomics.load_params(path) / validate_params(mapping) / settings_hash(params)
    radiomics.extract_features(image, mask, *, params, label) -> (features, diagnostics)
    radiomics.extract_regions(image, labels, zones, *, params, regions, scan_id) -> (wide, diagnostics)
    ibsi.run_ibsi(data_dir, configurations) -> DataFrame ; ibsi_map.IBSI_TAGS
    stage.run_qct(cfg, wd, client, *, force) / stage.run_radiomics(cfg, wd, client, *, force)

Methods and references: ``docs/methods_features.md``.
"""
