"""The shipped example first frames and recorded motions."""
import numpy as np

from app.examples import Examples
from controls.landmarks import INDEX


def test_each_mode_has_a_small_default_first(examples):
    for mode in ("world", "avatar"):
        g = examples.gallery(mode)
        assert g and g[0].caption == "default"
        for e in g:
            assert e.path.stat().st_size < 100_000
        img = examples.default(mode)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 128


def test_recorded_motions_are_upright_people_that_move(examples):
    from controls.motion import RecordedMotion

    motions = examples.motions()
    assert {"walk", "dance_a"} <= set(motions)
    for name, path in motions.items():
        assert path.stat().st_size < 100_000
        m = RecordedMotion.load(path)
        lm = m.landmarks
        assert len(m) >= 24 and np.isfinite(lm).all()
        head, feet = lm[:, INDEX["nose"], 1], lm[:, INDEX["left_heel"], 1]
        assert np.median(head) < np.median(feet)                   # head above the feet
        assert lm[:, :, :2].std(0).mean() > 0.005                  # it moves
        assert 0.1 < np.median(lm[:, :, 0]) < 0.9                  # and stays in the picture


def test_missing_folder_is_empty(tmp_path):
    e = Examples(tmp_path)
    assert e.gallery("world") == [] and e.default("world") is None and e.motions() == {}
