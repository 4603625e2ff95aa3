"""The MediaPipe wrapper: numpy frame in, 33 landmarks out, nobody -> None, junk -> None."""
import numpy as np
import pytest
from skimage import data

from controls.detector import PoseDetector, as_rgb_frame
from controls.landmarks import INDEX


@pytest.fixture(scope="module")
def detector():
    with PoseDetector(model_complexity=1, tracking=False) as d:
        yield d


def test_finds_the_astronaut(detector):
    lm = detector.detect(data.astronaut())
    assert lm.shape == (33, 4) and lm.dtype == np.float32
    nose, ls, rs = lm[INDEX["nose"]], lm[INDEX["left_shoulder"]], lm[INDEX["right_shoulder"]]
    assert nose[3] > 0.9 and 0.3 < nose[0] < 0.6 and nose[1] < 0.45       # her face: upper middle
    assert ls[1] > nose[1] and rs[1] > nose[1]                              # shoulders below the nose
    assert ls[0] > rs[0]                                                    # her left is on the image right


def test_nobody_is_none(detector):
    assert detector.detect(np.full((240, 320, 3), 90, np.uint8)) is None
    assert detector.detect(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)) is None


@pytest.mark.parametrize("frame", [None, np.zeros((0, 0, 3)), np.zeros((5, 5, 3)), np.zeros((64, 64, 2)),
                                   "not an array", np.zeros((64,))], ids=str)
def test_junk_is_none(detector, frame):
    assert detector.detect(frame) is None


def test_other_layouts_are_converted():
    a = data.astronaut()
    assert as_rgb_frame(a[..., 0]).shape == (512, 512, 3)
    assert as_rgb_frame(np.dstack([a, a[..., :1]])).shape == (512, 512, 3)
    f = as_rgb_frame(a.astype(np.float32) / 255)
    assert f.dtype == np.uint8 and abs(int(f.mean()) - int(a.mean())) <= 1
    assert as_rgb_frame(np.full((40, 40, 3), np.nan)).max() == 0


def test_tracking_mode_follows_a_moving_person():
    a = data.astronaut()
    with PoseDetector() as d:
        xs = []
        for dx in range(0, 60, 10):
            frame = np.zeros_like(a)
            frame[:, dx:] = a[:, :512 - dx]
            lm = d.detect(frame)
            xs.append(lm[INDEX["nose"], 0])
    assert np.all(np.diff(xs) > 0)


def test_closed_detector_refuses():
    d = PoseDetector(tracking=False)
    d.close()
    with pytest.raises(RuntimeError):
        d.detect(data.astronaut())
