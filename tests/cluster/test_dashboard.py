"""The Dask dashboard's address is printed when a cluster starts; Dask's own INFO chatter is not."""

from __future__ import annotations

import logging
import sys

import pytest

from ctpheno.cluster.client import open_client
from ctpheno.config.common import ClusterConfig
from ctpheno.logs import setup_logging


@pytest.fixture(autouse=True)
def _own_logging():
    """setup_logging installs root handlers for the process; leave the next test the logging it found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_dashboard_link_is_printed_and_dask_info_lines_are_not(capsys):
    setup_logging()
    with open_client(ClusterConfig(n_workers=1, processes=False, dashboard=True)) as client:
        link = client.dashboard_link
    err = "".join(capsys.readouterr())  # rich writes the log to stdout
    assert link.startswith("http://") and link.endswith("/status")
    assert f"Dask dashboard: {link}" in " ".join(err.split())
    assert "Scheduler at" not in err and "Start worker" not in err  # distributed's INFO lines stay out
    logging.getLogger("distributed.scheduler").warning("a warning from Dask")
    assert "a warning from Dask" in "".join(capsys.readouterr())


def test_without_a_dashboard_the_line_says_how_to_get_one():
    from ctpheno.cluster.client import dashboard_line

    class NoDashboard:  # a scheduler that serves no dashboard (bokeh missing, or a remote one without)
        dashboard_link = "http://127.0.0.1:8787/status"

        def scheduler_info(self):
            return {"services": {}}

    assert dashboard_line(NoDashboard()).startswith("Dask dashboard: off (set cluster.dashboard: true")


def test_a_local_scheduler_without_bokeh_gets_no_dead_link(monkeypatch):
    from ctpheno.cluster.client import dashboard_line

    class Serving:  # the scheduler's HTTP endpoint is up, but /status needs bokeh
        dashboard_link = "http://127.0.0.1:8787/status"

        def scheduler_info(self):
            return {"services": {"dashboard": 8787}}

    assert dashboard_line(Serving()) == "Dask dashboard: http://127.0.0.1:8787/status"  # remote: its own bokeh
    monkeypatch.setitem(sys.modules, "bokeh", None)
    assert dashboard_line(Serving(), local=True).startswith("Dask dashboard: off")
