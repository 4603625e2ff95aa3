"""eval/compare.py: two generators on the same clips, compared on the same bootstrap resamples."""
import json

import numpy as np
import pytest

from eval.compare import main, paired
from eval.stats import save_features


def _clips(rng, W=3, C=6, n=12, D=5):
    """Truth whose clips differ a lot from each other (the spread pairing cancels)."""
    centres = 3.0 * rng.normal(size=(C, D))
    return [[centres[c] + rng.normal(size=(n, D)) for c in range(C)] for _ in range(W)]


def _generated(rng, gt, shift_per_window):
    """The truth's clips, each window moved away from it by its shift."""
    return [[f + s + 0.3 * rng.normal(size=f.shape) for f in fw] for fw, s in zip(gt, shift_per_window)]


def test_a_generator_closer_to_the_truth_wins_every_paired_resample():
    rng = np.random.default_rng(0)
    gt = _clips(rng)
    old = _generated(rng, gt, [0.6, 1.2, 1.8])                  # drifts away
    new = _generated(rng, gt, [0.5, 0.6, 0.7])                  # closer, and drifts less
    r = paired(old, new, gt, n_boot=50)
    for k in ("mean_fvd", "last_fvd", "drift_fvd", "mean_fvd_matched", "drift_fvd_matched"):
        f = r[k]
        assert f["new"] < f["old"] and f["ratio"] == pytest.approx(f["new"] / f["old"]), k
        assert f["new_lower"] == 1.0 and f["ratio_ci"][1] < 1.0, k
    # swapped: the reciprocal ratio, never lower
    s = paired(new, old, gt, n_boot=50)
    assert s["mean_fvd"]["ratio"] == pytest.approx(1 / r["mean_fvd"]["ratio"])
    assert s["drift_fvd"]["new_lower"] == 0.0
    # the same generator twice: a ratio of exactly 1, lower in no resample
    same = paired(old, old, gt, n_boot=20)
    assert all(f["ratio"] == 1.0 and f["ratio_ci"] == [1.0, 1.0] and f["new_lower"] == 0.0 for f in same.values())
    # one window: its FVD-lite only
    assert set(paired(old[:1], new[:1], gt[:1], n_boot=5)) == {"mean_fvd"}


def test_the_command_line_refuses_runs_over_other_clips(tmp_path, capsys):
    rng = np.random.default_rng(1)
    gt = _clips(rng)
    windows, labels = [(0, 20), (20, 40), (40, 60)], [0] * 6
    save_features(tmp_path / "a.npz", windows, labels, gt, {"aapt": _generated(rng, gt, [1, 1, 1])})
    save_features(tmp_path / "b.npz", windows, labels, gt, {"aapt": _generated(rng, gt, [0.2, 0.2, 0.2]),
                                                           "long": _generated(rng, gt, [2, 2, 2])})
    capsys.readouterr()
    main(["--features", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--n-boot", "10"])
    r = json.loads(capsys.readouterr().out)
    assert r["clips"] == 6 and r["windows"] == 3 and r["figures"]["mean_fvd"]["new_lower"] == 1.0
    main(["--features", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--methods", "aapt", "long",
          "--n-boot", "10"])
    assert json.loads(capsys.readouterr().out)["figures"]["mean_fvd"]["new_lower"] == 0.0
    other = _clips(np.random.default_rng(2))
    save_features(tmp_path / "c.npz", windows, labels, other, {"aapt": _generated(rng, other, [0, 0, 0])})
    with pytest.raises(SystemExit):
        main(["--features", str(tmp_path / "a.npz"), str(tmp_path / "c.npz")])
    assert "ground truth's features differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--features", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--methods", "teacher"])
    assert "no method 'teacher'" in capsys.readouterr().err
