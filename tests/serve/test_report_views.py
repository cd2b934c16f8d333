"""The operator API shows what the actors report, field for field: a field added to a report
reaches the API (or this fails), and the views read reports by attribute."""

from __future__ import annotations

import msgspec

from actors.feed import FeedReport
from actors.retrain_scheduler import RetrainDecision, RetrainProgress, RetrainReport
from serve.routes.market import FeedView
from serve.routes.operations import FeedStatusView, RetrainProgressView, RetrainStatus


def _fields(struct: type[msgspec.Struct]) -> set[str]:
    return set(struct.__struct_fields__)


def test_feed_status_view_with_every_report_field_shows_them_all() -> None:
    assert set(FeedStatusView.model_fields) == _fields(FeedReport)


def test_market_feed_view_with_report_shows_only_report_fields() -> None:
    assert set(FeedView.model_fields) <= _fields(FeedReport)


def test_retrain_status_view_with_every_report_field_shows_them_all() -> None:
    assert set(RetrainStatus.model_fields) == _fields(RetrainReport)
    assert set(RetrainProgressView.model_fields) == _fields(RetrainProgress)


def test_feed_status_view_from_unreachable_report_keeps_counters_empty() -> None:
    report = FeedReport(venue="okx", connection="okx-0", state="unreachable")
    view = FeedStatusView.model_validate(report)
    assert (view.state, view.messages, view.symbols, view.problems) == ("unreachable", None, [], {})


def test_retrain_status_view_from_report_carries_nested_decisions_and_progress() -> None:
    decision = RetrainDecision(model="finone-returns", version="3", alias="champion", reason="r")
    step = RetrainProgress(phase="walk-forward", done=2, total=8, unit="IBM fold 2/4: baselines")
    report = RetrainReport(
        state="training",
        detail="d",
        runs=1,
        last_run_at=1.0,
        last_run_duration_s=60.0,
        decisions=[decision],
        instruments=["a"],
        intervals=["1d"],
        interval=None,
        started_at=100.0,
        elapsed_s=12.5,
        progress=step,
    )
    view = RetrainStatus.model_validate(report)
    assert view.decisions[0].model == "finone-returns" and view.decisions[0].alias == "champion"
    assert view.progress is not None
    assert (view.progress.phase, view.progress.done, view.progress.total) == ("walk-forward", 2, 8)
    assert (view.started_at, view.elapsed_s, view.last_run_duration_s) == (100.0, 12.5, 60.0)
