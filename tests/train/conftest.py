"""Tiny rendered datasets shared by the training tests (32 px clips)."""
import pytest

from data.build import build


def _tiny(source: str, root):
    build(source, "train", clips=6 if source == "world" else 4, n_frames=21, size=32, out=str(root), per_shard=3,
          workers=1)
    build(source, "val", clips=2, n_frames=21, size=32, out=str(root), per_shard=2, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return _tiny("world", tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def tiny_avatar(tmp_path_factory):
    """Pose-controlled clips (the avatar studio) for the pose reader and its term."""
    return _tiny("avatar", tmp_path_factory.mktemp("tiny-avatar"))
