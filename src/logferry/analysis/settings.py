"""The analysis options as one frozen value (from ``[collector]`` ``analysis_*`` and ``drain_*``).

The miner, the alert rules and the follower take this value, never the config itself, so tests build it
directly. This module only declares; it must never read a file or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from logferry.config import CollectorConfig

TEMPLATE_BUCKET_S = 3600  # template counts are kept per hour: a trend, at a size that stays small
ERROR_LEVEL_MAX = 3  # error, critical, alert, emergency (syslog severities: lower is worse)


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    enabled: bool = True
    interval_s: float = 5.0  # idle: how often to look for new records and check quiet sources' windows
    batch_rows: int = 2000  # records mined per transaction
    window_s: int = 60  # error-rate window
    baseline_windows: int = 30  # the baseline is the error rate over this many windows before
    error_rate_factor: float = 3.0  # a jump: rate > factor x baseline ...
    error_rate_min: float = 0.05  # ... and rate >= this ...
    min_window_records: int = 20  # ... in a window of at least this many records (and a baseline as big)
    warmup_records: int = 1000  # templates found in the first records mined raise no alert
    keep_days: int = 30  # hourly counts, error windows and alerts older than this go; 0: kept forever
    drain_similarity: float = 0.4
    drain_depth: int = 4
    drain_max_children: int = 100
    drain_max_clusters: int = 10_000

    def drain_key(self) -> str:
        """What a saved drain3 state depends on: when it changes, mining starts a new template tree."""
        return (
            f"sim={self.drain_similarity};depth={self.drain_depth};children={self.drain_max_children};"
            f"clusters={self.drain_max_clusters}"
        )


def settings_from(cfg: CollectorConfig) -> AnalysisSettings:
    return AnalysisSettings(
        enabled=cfg.analysis_enabled,
        interval_s=cfg.analysis_interval_s,
        batch_rows=cfg.analysis_batch_rows,
        window_s=cfg.analysis_window_s,
        baseline_windows=cfg.analysis_baseline_windows,
        error_rate_factor=cfg.analysis_error_rate_factor,
        error_rate_min=cfg.analysis_error_rate_min,
        min_window_records=cfg.analysis_min_window_records,
        warmup_records=cfg.analysis_warmup_records,
        keep_days=cfg.analysis_keep_days,
        drain_similarity=cfg.drain_similarity,
        drain_depth=cfg.drain_depth,
        drain_max_children=cfg.drain_max_children,
        drain_max_clusters=cfg.drain_max_clusters,
    )
