"""Fixtures of the app tests: tiny random-weight models in a temporary assets folder, a session manager."""
from pathlib import Path

import numpy as np
import pytest

from app.examples import DEFAULT_DIR, Examples
from app.manager import SessionManager
from app.models import ModelStore, discover
from bench.app import save_random_model


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread, as ``python -m app`` uses on a 2-core machine: tiny models gain nothing from
    more, and on a busy machine every extra thread's hand-off can stall a step for tens of ms."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("assets")
    save_random_model(root / "world-tiny", "camera")
    save_random_model(root / "avatar-tiny", "pose")
    return root


@pytest.fixture(scope="session")
def examples() -> Examples:
    return Examples(DEFAULT_DIR)


@pytest.fixture
def make_manager(tiny_assets, examples):
    made = []

    def make(**kw) -> SessionManager:
        store = ModelStore(discover(tiny_assets))
        m = SessionManager(store, {mode: examples.default(mode) for mode in ("world", "avatar")}, examples.motions(),
                           **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.shutdown()


def person_frame(shift: float = 0.0, size=(240, 320)) -> np.ndarray:
    """A webcam-like frame: scikit-image's astronaut on a dark background, shifted sideways."""
    from PIL import Image
    from skimage import data

    H, W = size
    side = int(H * 0.95)
    im = Image.fromarray(data.astronaut()).resize((side, side))
    canvas = Image.new("RGB", (W, H), (38, 40, 46))
    canvas.paste(im, ((W - side) // 2 + int(shift * W), H - side))
    return np.asarray(canvas)
