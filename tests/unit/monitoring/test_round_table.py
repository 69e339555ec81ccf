"""The round's table on an 80-column terminal: every model's version, figures, drift and
decision are shown whole, and every reason follows."""

from __future__ import annotations

from rich.console import Console

from tailor.monitoring.drift import DriftResult
from tailor.monitoring.rounds import ModelRound
from tailor.monitoring.table import round_table


def test_the_round_table_fits_an_80_column_terminal() -> None:
    rounds = [
        ModelRound("homepage", "ok", "no events after v1's training data", champion_version="1",
                   metric="precision@10", baseline=0.0394),
        ModelRound("cross_sell", "rolled_back", "a challenger lost; v9 was better",
                   champion_version="12", metric="hit_rate@10", baseline=0.5484, current=0.3,
                   drift=[DriftResult("profile", 11, ["spend", "views"]), DriftResult("scored", 2)]),
        ModelRound("checkout", "retrain_blocked", "the gate failed (freshness)",
                   champion_version="3", metric="roc_auc", baseline=0.8371, current=0.6),
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(round_table(rounds))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for shown in ("v12", "0.5484", "0.3000", "-45.3%", "2/11 0/2", "rolled back",
                  "retrain blocked", "precision@10", "the gate failed (freshness)",
                  "a challenger lost; v9 was better"):
        assert shown in text, shown
