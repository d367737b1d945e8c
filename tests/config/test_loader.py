"""Config errors name the file, the key path and what is allowed; overrides; per-stage files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ctpheno.config import load_pipeline_config, save_resolved
from ctpheno.config.base import parse_override
from ctpheno.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_repository_configs_load():
    cfg = load_pipeline_config(CONFIG / "pipeline.yaml")
    assert cfg.cluster.kind == "local" and cfg.cluster.retries == 1
    # sections written as paths to per-stage files are read from those files
    nlst = yaml.safe_load((CONFIG / "preprocess" / "nlst.yaml").read_text())
    assert cfg.preprocess.segmentation.threshold_hu == nlst["segmentation"]["threshold_hu"]
    load_pipeline_config(CONFIG / "demo.yaml")


def test_unknown_key_lists_allowed_keys(tmp_path):
    f = _write(tmp_path / "p.yaml", "cluster:\n  n_workerz: 2\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(f)
    msg = str(err.value)
    assert str(f) in msg
    assert re.search(r"cluster\.n_workerz: unknown key 'n_workerz' \(allowed keys here: .*n_workers", msg)


@pytest.mark.parametrize(("yaml_text", "message"), [
    pytest.param("cluster:\n  threads_per_worker: many\n",
                 r"cluster\.threads_per_worker: Input should be a valid integer.*got 'many'", id="wrong-type"),
    pytest.param("preprocess:\n  segmentation:\n    threshold_hu: -100\n",
                 r"p\.yaml:\n.*preprocess\.segmentation\.threshold_hu: "
                 r"Input should be less than or equal to -200; got -100", id="out-of-range"),
    pytest.param("cluster:\n  kind: yarn\n",
                 r"cluster\.kind: Input should be 'local', 'address', 'slurm'.*'synchronous'; got 'yarn'",
                 id="bad-choice"),
])
def test_bad_value_names_key_value_and_what_is_allowed(tmp_path, yaml_text, message):
    f = _write(tmp_path / "p.yaml", yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config(f)


def test_every_error_reported_at_once(tmp_path):
    f = _write(tmp_path / "p.yaml", "cluster:\n  retries: -1\n  kindd: local\nreport:\n  titel: x\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(f)
    assert len(str(err.value).splitlines()) == 4  # header + three problems


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match=r"configuration file .*nope\.yaml does not exist"):
        load_pipeline_config(tmp_path / "nope.yaml")
    f = _write(tmp_path / "p.yaml", "preprocess: preprocess/missing.yaml\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: section 'preprocess' points to 'preprocess/missing\.yaml'"):
        load_pipeline_config(f)
    bad = _write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml must hold a mapping of keys, got list"):
        load_pipeline_config(bad)
    broken = _write(tmp_path / "broken.yaml", "cluster: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        load_pipeline_config(broken)


def test_set_overrides(tmp_path):
    cfg = load_pipeline_config(CONFIG / "pipeline.yaml",
                               overrides=["cluster.n_workers=5", "cluster.kind=address",
                                          "cluster.address=tcp://10.0.0.5:8786",
                                          "preprocess.segmentation.threshold_hu=-450"])
    assert (cfg.cluster.n_workers, cfg.cluster.kind, cfg.cluster.address) == (5, "address",
                                                                              "tcp://10.0.0.5:8786")
    assert cfg.preprocess.segmentation.threshold_hu == -450
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    with pytest.raises(ConfigError, match=r"override 'cluster' must look like section\.key=value"):
        load_pipeline_config(CONFIG / "pipeline.yaml", overrides=["cluster"])
    with pytest.raises(ConfigError, match=r"with overrides \['cluster\.n_workers=zero'\].*\n.*"
                                          r"cluster\.n_workers: Input should be a valid integer"):
        load_pipeline_config(CONFIG / "pipeline.yaml", overrides=["cluster.n_workers=zero"])
    with pytest.raises(ConfigError, match=r"override 'cluster\.kind\.x=1': 'kind' is not a section"):
        load_pipeline_config(CONFIG / "pipeline.yaml", overrides=["cluster.kind.x=1"])
    with pytest.raises(ConfigError, match=r"clustr: unknown key 'clustr'"):
        load_pipeline_config(CONFIG / "pipeline.yaml", overrides=["clustr.kind=local"])


def test_stage_file_for_fills_its_section(tmp_path):
    root = tmp_path / "config"
    _write(root / "pipeline.yaml", "cluster:\n  n_workers: 3\npreprocess:\n  qc_png: true\n")
    stage = _write(root / "preprocess" / "site.yaml", "qc_png: false\nsegmentation:\n  threshold_hu: -400\n")
    cfg = load_pipeline_config(stage, stage_file_for="preprocess")
    assert cfg.preprocess.qc_png is False and cfg.preprocess.segmentation.threshold_hu == -400
    assert cfg.cluster.n_workers == 3  # other sections from the pipeline.yaml found above
    bad = _write(root / "preprocess" / "bad.yaml", "qc_pngg: false\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml \(section preprocess\).*\n.*preprocess\.qc_pngg: "
                                          r"unknown key"):
        load_pipeline_config(bad, stage_file_for="preprocess")
    # the seed's per-stage files load as written
    for name, rel in [("preprocess", "preprocess/nlst.yaml"), ("radiomics", "features/radiomics.yaml"),
                      ("embeddings", "features/embeddings.yaml"),
                      ("unsupervised", "models/unsupervised.yaml"), ("supervised", "models/supervised.yaml")]:
        load_pipeline_config(CONFIG / rel, stage_file_for=name)
    rad = load_pipeline_config(CONFIG / "features" / "radiomics.yaml", stage_file_for="radiomics")
    assert rad.features.radiomics.params == CONFIG / "features" / "radiomics.yaml"
    with pytest.raises(ValueError, match=r"stage_file_for='preproces' is not a stage.*'preprocess'"):
        load_pipeline_config(stage, stage_file_for="preproces")


def test_resolved_config_and_versions_saved_without_salt(tmp_path):
    cfg = load_pipeline_config(CONFIG / "pipeline.yaml",
                               overrides=["paths.pseudonym_salt=s3cr3t-salt", "cluster.n_workers=7"])
    run = save_resolved(cfg, tmp_path / "runs" / "r1")
    text = (run / "config.resolved.yaml").read_text()
    assert "s3cr3t-salt" not in text
    saved = yaml.safe_load(text)
    assert saved["cluster"]["n_workers"] == 7 and saved["paths"]["pseudonym_salt"] == "***"
    # the saved file reloads to the same configuration (salt aside)
    again = load_pipeline_config(run / "config.resolved.yaml", overrides=["paths.pseudonym_salt=s3cr3t-salt"])
    assert again == cfg
    versions = json.loads((run / "versions.json").read_text())
    assert versions["python"].count(".") == 2 and versions["dask"][0].isdigit() and "ctpheno" in versions


BOMB = """cluster:
  jobqueue:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]
"""


def test_yaml_aliases_refused_in_files_and_overrides(tmp_path):
    """A few hundred bytes of nested aliases would expand to ~10^5 strings (the billion-laughs pattern)."""
    path = _write(tmp_path / "bomb.yaml", BOMB)
    assert len(BOMB) < 400
    with pytest.raises(ConfigError, match=r"bomb.yaml.*YAML aliases \(\*a\) are not allowed"):
        load_pipeline_config(path)
    with pytest.raises(ConfigError, match="aliases"):
        parse_override("cluster.jobqueue={a: &x [1, 2], b: *x}")
    # anchors and aliases are the only thing refused: plain YAML still loads
    assert parse_override("cluster.jobqueue={queue: normal, cores: [1, 2]}")[1] == {"queue": "normal", "cores": [1, 2]}


def test_values_are_set_as_data_and_resolved_config_tokenises_inputs(tmp_path):
    from ctpheno.config.public import public_command

    cfg = load_pipeline_config(None, overrides=["paths.pseudonym_salt=pepper"],
                               values={"paths.inputs": ['/archive/DOE^JOHN", "/etc', "/b"],
                                       "paths.clinical": "/c/clin #1.csv", "paths.workdir": "W #x"})
    assert cfg.paths.inputs == ['/archive/DOE^JOHN", "/etc', "/b"] and str(cfg.paths.workdir) == "W #x"
    text = (save_resolved(cfg, tmp_path / "r") / "config.resolved.yaml").read_text()
    saved = yaml.safe_load(text)
    assert saved["paths"]["inputs"] == ["<input0>", "<input1>"] and saved["paths"]["clinical"] == "<clinical>"
    assert "DOE" not in text and "pepper" not in text and "clin #1" not in text
    cmd = public_command("ctpheno run --input '/archive/DOE^JOHN\", \"/etc' -i /b --clinical '/c/clin #1.csv' "
                         "--set paths.pseudonym_salt=pepper --set x.api_key=k --set cluster.n_workers=2", cfg)
    assert cmd == ("ctpheno run --input '<input0>' -i '<input1>' --clinical '<clinical>' "
                   "--set 'paths.pseudonym_salt=***' --set 'x.api_key=***' --set cluster.n_workers=2")
