"""Dask orchestration: clients for every backend and the per-scan stage runner."""

from .client import jobqueue_script, make_jobqueue_cluster, open_client
from .runner import (ScanTask, StageResult, config_hash, execute_task, is_complete, run_stage, stable_hash,
                     task_key)

__all__ = ["ScanTask", "StageResult", "config_hash", "execute_task", "is_complete", "jobqueue_script",
           "make_jobqueue_cluster", "open_client", "run_stage", "stable_hash", "task_key"]
