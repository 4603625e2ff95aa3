"""bench.soak in CI: a 1440-frame stream (an hour of a tab is 86,400) through the app's session layer
on the tiny model completes with flat memory. Step-time flatness is a speed figure: it is reported
by ``python -m bench.soak --json`` (10,000 frames), not asserted on a shared machine."""
import json

from bench.app import save_random_model
from bench.soak import RSS_GROWTH_MAX_PCT, main


def test_a_1440_frame_soak_completes_with_flat_memory(tmp_path, capsys):
    save_random_model(tmp_path / "world-tiny", "camera")
    main(["--frames", "1440", "--assets", str(tmp_path), "--threads", "1", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1                                         # one JSON object, nothing else
    r = json.loads(out[0])
    assert r["errors"] == [] and r["frames"] >= 1440 and r["steps"] >= 360
    assert r["steps_timed"] >= 0.95 * r["steps"]                # step times of (nearly) every step were seen
    assert r["frames_shown"] >= r["steps"] // 4                 # the page side got frames all along
    assert r["rss_growth_pct"] <= RSS_GROWTH_MAX_PCT and r["rss_flat"]
    for key in ("rss_mb_start", "rss_mb_end", "step_ms_p95_start", "step_ms_p95_end", "p95_ratio", "step_flat", "ok"):
        assert key in r
