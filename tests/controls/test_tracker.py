"""The webcam tracker: a frame in, (landmarks in the model's square or None, preview, note) out."""
import numpy as np
import pytest
from skimage import data

from controls.camera_input import CameraInput
from controls.pose_input import PoseInput
from controls.source import CameraSource, PoseSource, source_for
from controls.tracker import WebcamTracker


@pytest.mark.parametrize("frame, note", [(None, "no frame arrived"), ("not an array", "not an image"),
                                         (np.zeros((5, 5, 3), np.uint8), "too small"),
                                         (np.zeros((64, 64, 2), np.uint8), "unusable layout")], ids=str)
def test_a_frame_without_a_picture_says_why(frame, note):
    t = WebcamTracker()
    landmarks, preview, why = t.track(frame)
    assert landmarks is None and preview is None and note in why
    assert t.detector is None and t.shape is None and not t.pose_ms     # nothing was detected
    assert t.preview(frame) is None


def test_a_wide_frame_is_found_in_the_centre_square_and_previewed_small():
    frame = np.zeros((512, 768, 3), np.uint8)
    frame[:, 128:640] = data.astronaut()                               # the centre square the model sees
    t = WebcamTracker()
    try:
        landmarks, preview, note = t.track(frame)
        assert note == "" and t.shape == (512, 768) and len(t.pose_ms) == 1
        assert landmarks.shape == (33, 4) and 0.3 < landmarks[0, 0] < 0.6 and landmarks[0, 1] < 0.45
        assert preview.shape == (160, 240, 3) and preview.dtype == np.uint8
        assert t.preview(frame).shape == (160, 240, 3)
    finally:
        t.close()
    assert t.detector is None


def test_sources_are_chosen_by_the_control_mode():
    camera, pose = CameraInput(), PoseInput()
    assert isinstance(source_for("camera", camera, pose), CameraSource)
    assert isinstance(source_for("pose", camera, pose), PoseSource)
    assert source_for("none", camera, pose) is None
    camera.set_slider("yaw", 1.0)
    twin = CameraInput()
    twin.set_slider("yaw", 1.0)
    np.testing.assert_array_equal(source_for("camera", camera, pose).next_frames(4, 123.0), twin.next_frames(4))
    np.testing.assert_array_equal(source_for("pose", camera, pose).next_frames(4, 0.0), PoseInput().next_frames(4, 0.0))
