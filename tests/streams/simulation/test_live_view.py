"""The terminal's key figures are computed from a worker's exposition the way Prometheus would."""

from rich.console import Console

from streams.simulation.live_view import Figures, render

EXPOSITION = """
# TYPE patrol_dispatch_decision_seconds histogram
patrol_dispatch_decision_seconds_bucket{le="0.01",priority="1"} 50
patrol_dispatch_decision_seconds_bucket{le="0.1",priority="1"} 90
patrol_dispatch_decision_seconds_bucket{le="1.0",priority="1"} 100
patrol_dispatch_decision_seconds_bucket{le="+Inf",priority="1"} 100
patrol_dispatch_decision_seconds_count{priority="1"} 100
patrol_dispatch_decision_seconds_sum{priority="1"} 3.0
# TYPE patrol_units gauge
patrol_units{agency="police",district="D",status="free",street="S1"} 3
patrol_units{agency="police",district="D",status="busy",street="S2"} 2
# TYPE patrol_sla_outcomes_total counter
patrol_sla_outcomes_total{domain="traffic",outcome="met",stage="arrive"} 3
patrol_sla_outcomes_total{domain="traffic",outcome="missed",stage="arrive"} 1
# TYPE patrol_open_incidents gauge
patrol_open_incidents{district="D",domain="traffic",priority="1",street="S1"} 4
"""


def test_quantiles_follow_prometheus_interpolation():
    f = Figures(EXPOSITION)
    assert f.quantile("patrol_dispatch_decision_seconds", 0.5) == 0.01
    assert abs(f.quantile("patrol_dispatch_decision_seconds", 0.95) - 0.55) < 1e-9
    assert f.quantile("patrol_response_seconds", 0.5) is None


def test_the_view_shows_units_compliance_and_open_incidents():
    console = Console(width=160, record=True)
    console.print(render(Figures(EXPOSITION)))
    text = console.export_text()
    assert "10 / 910 ms" in text  # p50 / p99 of the decision time
    assert "75% (3 of 4)" in text  # arrive on time
    def after(name: str, n: int) -> list[str]:
        # the tables stand side by side, so a screen line holds rows of several of them
        for line in text.splitlines():
            cells = [c.strip() for c in line.split("│")]
            if name in cells:
                i = cells.index(name)
                return cells[i + 1:i + 1 + n]
        raise AssertionError(f"no row {name!r}")

    assert after("police", 3) == ["3", "2", "0"]  # free, busy, unavailable
    assert after("traffic", 2) == ["4", "0"]  # open, queued
