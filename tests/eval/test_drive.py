"""The synthetic webcam drivers of eval/drive.py and one short drive through a tiny avatar."""
import numpy as np
import pytest
import torch

from controls.landmarks import INDEX
from eval.drive import DRIVERS, arm_angles, drive, driver


@pytest.fixture(scope="module")
def drivers():
    return {name: driver(name, 288) for name in DRIVERS}


def test_drivers_are_what_a_webcam_would_see(drivers):
    full = drivers["full"]
    assert all(d.shape == (288, 33, 4) for d in drivers.values())
    width = lambda lm: np.linalg.norm(lm[:, INDEX["left_shoulder"], :2] - lm[:, INDEX["right_shoulder"], :2], axis=1)
    assert np.allclose(width(drivers["upper-body"]), 2.5 * width(full), rtol=1e-4)
    assert (drivers["upper-body"][:, INDEX["left_knee"], 3] <= 0.1).all()          # legs under the desk
    assert np.allclose(width(drivers["close"]), 3.5 * width(full), rtol=1e-4)
    off = drivers["offcentre"]
    assert ((off[..., 0] > 1) & (off[..., 3] < 0.1)).any()                          # partly out of the frame
    sw = drivers["switch"]
    assert (sw[:12, :, 3] == 0).all() and (sw[120:132, :, 3] == 0).all()          # nobody between turns
    assert not np.allclose(sw[130:, 0, :2].mean(0), sw[20:110, 0, :2].mean(0), atol=0.1)  # another place


def test_arm_angles_read_each_bone():
    lm = np.zeros((33, 4), np.float32)
    lm[INDEX["left_shoulder"], :2] = (0.5, 0.5)
    lm[INDEX["left_elbow"], :2] = (0.5, 0.7)            # straight down: +90 degrees (y down)
    lm[INDEX["left_wrist"], :2] = (0.7, 0.7)            # forearm to the right: 0 degrees
    a = arm_angles(lm)
    assert a[0] == pytest.approx(90.0) and a[1] == pytest.approx(0.0)


def test_a_short_drive_reports_its_scores():
    from model.autoencoder import PRESETS as AE_PRESETS
    from model.autoencoder import VideoAutoencoder
    from model.config import replace
    from model.dit import PRESETS, VideoDiT
    from model.engine import StreamingEngine

    torch.manual_seed(0)
    e = StreamingEngine(VideoAutoencoder(AE_PRESETS["tiny"]), VideoDiT(replace(PRESETS["tiny"], control="pose")),
                        dtype=torch.float32)
    r = drive(e, np.full((32, 32, 3), 90, np.uint8), None, driver("upper-body", 16), "relative")
    assert r["frames"] == 16 and 0.0 <= r["person_found"] <= 1.0
    assert set(r["arm_angle_error_deg"]) == {"left upper arm", "left forearm", "right upper arm", "right forearm"}
    assert r["pose_ms_per_frame"] > 0


def test_the_no_network_baseline_moves_the_first_frame_per_bone(monkeypatch):
    """``render="warp"``: each frame is the first frame moved per bone to the pose the engine would
    receive; a pose equal to the first frame's leaves the frame as it is, a raised arm moves pixels."""
    from data.sources import make_clip
    from eval.baselines import moved_per_bone
    from model.autoencoder import PRESETS as AE_PRESETS
    from model.autoencoder import VideoAutoencoder
    from model.config import replace
    from model.dit import PRESETS, VideoDiT
    from model.engine import StreamingEngine

    clip = make_clip("avatar", 11, 5, 32)
    first, body = clip.frames[0], clip.landmarks[0]
    same = moved_per_bone(first, body, np.repeat(body[None], 2, 0))
    assert np.abs(same.astype(int) - first[None]).max() <= 1
    raised = body.copy()
    raised[INDEX["left_wrist"], :2] = raised[INDEX["left_shoulder"], :2] + (0.0, -0.3)
    moved = moved_per_bone(first, body, raised[None])
    assert np.abs(moved.astype(int) - first[None]).max() > 20

    torch.manual_seed(0)
    e = StreamingEngine(VideoAutoencoder(AE_PRESETS["tiny"]), VideoDiT(replace(PRESETS["tiny"], control="pose")),
                        dtype=torch.float32)
    import eval.drive as drive_module

    monkeypatch.setattr(drive_module, "WINDOW_S", 4 / drive_module.FPS)          # windows of 4 frames
    r = drive(e, first, body, driver("full", 8), "relative", render="warp")
    assert r["frames"] == 8 and r["step_ms"] is None and 0.0 <= r["person_found"] <= 1.0
    windows = r["person_found_per_window"]
    assert len(windows) == 2 and np.mean(windows) == pytest.approx(r["person_found"])
    assert all(w in (0.0, 0.25, 0.5, 0.75, 1.0) for w in windows)
    with pytest.raises(ValueError, match="first frame's pose"):
        drive(e, first, None, driver("full", 8), "relative", render="warp")
