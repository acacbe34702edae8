"""When analysis raises an alert: a new message template, or an error rate that jumps.

- **new template**: a template Drain created after the first ``warmup_records`` records were mined (the
  first records of a store make every template "new"; alerting on them would only be noise).
- **error rate**: a source's window of ``window_s`` seconds (record time) is *complete* once a record of
  that source beyond it was mined, or the wall clock passed its end by another window (a source that went
  quiet after a burst still alerts). A complete window jumps when it holds at least ``min_window_records``
  records, its error rate (error or worse) is at least ``error_rate_min``, and it is more than
  ``error_rate_factor`` times the baseline: the error rate over the ``baseline_windows`` windows before it,
  which must hold at least ``min_window_records`` records too (a brand-new source has no baseline to jump
  from).

Each window is judged once (the store keeps, per source, up to where it judged), and an alert is unique per
kind, source, template and window, so a restart never raises one twice. This module is pure: it must never
read a clock or a store; times and counts are passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from logferry.analysis.settings import AnalysisSettings


class AlertKind(enum.Enum):
    NEW_TEMPLATE = "new_template"
    ERROR_RATE = "error_rate"


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    source: str  # "" for a new template (templates are mined across sources)
    template: int  # 0 for an error-rate alert
    window_s: int  # the window's start (epoch s); a new template: the hour of its first record
    value: float  # the window's error rate; a new template: 1
    baseline: float  # the baseline error rate; a new template: 0
    detail: str


def complete_through(newest_s: int, now_s: float, width_s: int) -> int:
    """The start of the last complete window of a source whose newest record is at ``newest_s``."""
    by_data = newest_s // width_s * width_s - width_s  # a newer window has data
    by_clock = int((now_s - width_s) // width_s) * width_s - width_s  # its end is a window in the past
    return max(by_data, min(by_clock, newest_s // width_s * width_s))


def judge_windows(
    source: str,
    series: Mapping[int, tuple[int, int]],
    first_s: int,
    last_s: int,
    settings: AnalysisSettings,
) -> list[Alert]:
    """Alerts for ``source``'s windows starting in [first_s, last_s]; ``series``: start -> (records, errors),
    holding at least the baseline windows before ``first_s``."""
    width = settings.window_s
    span = settings.baseline_windows * width
    alerts: list[Alert] = []
    for start in sorted(s for s in series if first_s <= s <= last_s):
        total, errors = series[start]
        if total < settings.min_window_records:
            continue
        rate = errors / total
        if rate < settings.error_rate_min:
            continue
        base_total = base_errors = 0
        for s, (n, e) in series.items():
            if start - span <= s < start:
                base_total += n
                base_errors += e
        if base_total < settings.min_window_records:
            continue
        baseline = base_errors / base_total
        if rate > settings.error_rate_factor * baseline:
            alerts.append(
                Alert(
                    AlertKind.ERROR_RATE, source, 0, start, rate, baseline,
                    f"{source}: {errors} of {total} records were errors ({rate:.0%}) in the {width} s from "
                    f"this window's start, against {baseline:.1%} in the {settings.baseline_windows} windows "
                    "before",
                )
            )  # fmt: skip
    return alerts


def new_template_alert(template: int, text: str, hour_s: int) -> Alert:
    return Alert(AlertKind.NEW_TEMPLATE, "", template, hour_s, 1.0, 0.0, f"new message template: {text}")
