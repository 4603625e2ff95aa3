"""The pose reader (model/pose_reader.py), its training stage and the long stage's pose_weight term."""
import numpy as np
import pytest
import torch

from controls.pose import pose_tokens
from model.config import ConfigError
from model.pose_reader import PoseReader, PoseReaderConfig, peak_distance, pose_error
from train.config import resolve
from train.loop import train


def _landmarks(x: float, y: float) -> np.ndarray:
    lm = np.zeros((1, 33, 4), np.float32)
    lm[0, :, 0], lm[0, :, 1], lm[0, :, 3] = x, y, 1.0
    lm[0, 5:, 3] = 0.0                                   # only landmarks 0-4 visible
    return lm


def test_pose_error_and_peak_distance_measure_against_the_commanded_pose_tokens():
    g = 8
    target = torch.from_numpy(pose_tokens(_landmarks(2.5 / g, 4.5 / g), g))[None]       # (1, T, 33)
    moved = torch.from_numpy(pose_tokens(_landmarks(3.5 / g, 4.5 / g), g))[None]        # one token right
    # the layout the reader's output follows: token r * g + k is row r (y), column k (x)
    assert int(target[0, :, 0].argmax()) == 4 * g + 2
    assert float(pose_error(target, target)) == 0.0
    assert abs(float(pose_error(torch.zeros_like(target), target)) - 1.0) < 1e-6
    assert 0.0 < float(pose_error(moved, target)) < 2.0
    d = peak_distance(moved, target, g)
    assert d.shape == (5,) and torch.all(d == 1.0)           # invisible landmarks are not scored
    assert torch.all(peak_distance(target, target, g) == 0.0)


def test_reader_output_is_per_token_row_major():
    r = PoseReader(PoseReaderConfig(latent_channels=4, latent_size=8, control_features=12, width=16, blocks=1))
    z = torch.randn(3, 4, 8, 8)
    out, grid = r(z), r.net(z)                                # (3, 16, 12), (3, 12, 4, 4)
    assert out.shape == (3, 16, 12)
    assert torch.equal(out[1, 2 * 4 + 3], grid[1, :, 2, 3])


def _cfg(stage, data, run_dir, **kw):
    return resolve("tiny", stage, dict(data=str(data), run_dir=str(run_dir), control="pose", **kw))


def test_pose_reader_stage_and_the_long_stages_pose_term(tiny_avatar, tmp_path):
    """The reader trains on ground-truth latents and reports its errors; the long stage adds
    pose_weight times the frozen reader's error on the generated segment to the generator's
    loss, and its gradient reaches the generator, never the reader."""
    import train.stages as stages

    with pytest.raises(ConfigError, match="pose_weight"):
        resolve("tiny", "long", dict(pose_weight=1.0))                      # camera control
    with pytest.raises(ValueError, match="pose-controlled"):
        stages.build_stage(resolve("tiny", "pose_reader", dict(data=str(tiny_avatar), run_dir=str(tmp_path))))
    for stage in ("autoencoder", "teacher", "adapt", "distill", "adversarial", "pose_reader"):
        train(_cfg(stage, tiny_avatar, tmp_path, steps=6 if stage == "pose_reader" else 4))
    ev = (tmp_path / "pose_reader" / "eval.jsonl").read_text().splitlines()
    assert ev and all(k in ev[-1] for k in ("clean_error", "noisy_error", "clean_peak_tokens", "clean_peak_within_1"))
    reader = PoseReader.from_pretrained(tmp_path / "pose_reader" / "final" / "model")
    # shipped like every stage model (bf16): train.export tells it from the DiTs by its config
    from train.export import export

    (shipped,) = export(tmp_path, tmp_path / "assets", {"pose_reader": "pose_reader/final/model"})
    assert isinstance(PoseReader.from_pretrained(shipped), PoseReader)
    st = stages.build_stage(_cfg("long", tiny_avatar, tmp_path, pose_weight=0.5))
    st._new_video(np.random.default_rng(0), torch.Generator().manual_seed(0))
    inp = st.seg_inputs = st._segment_inputs(0, torch.Generator().manual_seed(1))
    loss, metrics = st.loss("gen0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    # the parallel pass recomputes the rolled-out frames: the term is the reader's error on them
    with torch.no_grad():
        want = float(pose_error(reader(inp.rolled.flatten(0, 1)), inp.ctrl.flatten(0, 1)))
    assert abs(metrics["pose_error"] - want) < 1e-3 * max(want, 1e-3)
    assert abs(loss.item() - metrics["g_loss"] - 0.5 * metrics["pose_error"]) < 1e-4
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in st.dit.parameters())
    assert all(p.grad is None and not p.requires_grad for p in st.pose_reader.parameters())
    assert 0.0 <= st.evaluate(1, tmp_path / "eval")["long_last_pose_error"] < 10.0
