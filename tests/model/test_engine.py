"""The streaming engine: shapes, determinism, flat memory, clear errors."""
import numpy as np
import pytest
import torch

from bench.common import rss_mb
from model.autoencoder import PRESETS as AE_PRESETS
from model.autoencoder import VideoAutoencoder
from model.config import replace
from model.dit import PRESETS, VideoDiT
from model.engine import ControlError, StreamingEngine, prepare_image


def _engine(control="camera", fpl=4, **kw) -> StreamingEngine:
    torch.manual_seed(0)
    ae = VideoAutoencoder(replace(AE_PRESETS["tiny"], frames_per_latent=fpl, reference=kw.pop("reference", False)))
    dit = VideoDiT(replace(PRESETS["tiny"], control=control, reproject=kw.pop("reproject", False),
                           frames_per_latent=fpl))
    with torch.no_grad():
        for p in list(ae.parameters()) + list(dit.parameters()):
            p.add_(torch.randn_like(p) * 0.05)
    return StreamingEngine(ae, dit, **kw)


@pytest.mark.parametrize("fpl", [4, 2])
def test_engine_stream_equals_the_training_rollout(fpl):
    """The app's engine and the recipe's rollout (model/sampling.py) make the same latents from
    the same first frame, camera controls and seed, reprojection maps included, for any number
    of video frames per latent."""
    from controls.camera import clip_camera_tokens, clip_reprojection_maps
    from model.sampling import rollout_one_step

    e = _engine(fpl=fpl, reproject=True, dtype=torch.float32)
    e.reset(_image(), seed=3)
    z0 = e.state.prev
    controls = np.random.default_rng(0).normal(0, 2.0, (3 * fpl, 7)) * [1, 1, 1, 0.1, 0.1, 0.05, 0.01]
    latents = []
    for k in range(3):
        assert e.step(controls[fpl * k:fpl * k + fpl]).shape == (fpl, 32, 32, 3)
        latents.append(e.state.prev)
    Ks, w2cs = _rig_path(e, controls)
    ctrl = torch.from_numpy(clip_camera_tokens(Ks, w2cs, e.size, e.size, e.grid, fpl))[None]
    warp = torch.from_numpy(clip_reprojection_maps(Ks, w2cs, e.size, e.size, fpl))[None]
    ref = rollout_one_step(e.dit, z0, ctrl, 3, torch.Generator().manual_seed(3), warp)
    assert torch.allclose(torch.cat(latents), ref[0, 1:], atol=1e-4)


def _rig_path(e: StreamingEngine, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, w2c) of the first frame and after each control, from the app's rig as the engine starts it."""
    from controls.camera import CameraRig, CameraState, RigLimits

    rig = CameraRig(e.size, e.size, CameraState(fov_x=e.default_fov), RigLimits(pitch_deg=85.0, roll_deg=90.0))
    Ks, w2cs = [rig.K()], [rig.w2c()]
    for c in controls:
        rig.step(c)
        Ks.append(rig.K())
        w2cs.append(rig.w2c())
    return np.stack(Ks), np.stack(w2cs)


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_reset_and_step_shapes():
    e = _engine()
    first = e.reset(_image(), seed=1)
    assert first.shape == (32, 32, 3) and first.dtype == np.uint8
    out = e.step(np.zeros(7))
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    assert e.step(np.zeros((4, 7))).shape == (4, 32, 32, 3)
    assert e.timing.total_ms > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_streamed_frames_equal_the_whole_clip_decode_of_its_latents(dtype):
    """The engine's decoder runs in NHWC (channels_last) in the compute dtype; its frames are the
    autoencoder's whole-clip decode (NCHW, fp32) of the same latents, up to that dtype's rounding."""
    e = _engine(dtype=dtype)
    first = e.reset(_image(), seed=2)
    zs, frames = [e.state.prev], [first[None]]
    for _ in range(3):
        frames.append(e.step(np.tile([1.5, 0, 0, 0.1, 0, 0, 0], (4, 1))))
        zs.append(e.state.prev)
    ref = VideoAutoencoder(e.ae.config)
    ref.load_state_dict({k: v.float() for k, v in e.ae.state_dict().items()})
    with torch.no_grad():
        whole = ref.decode(ref.denormalize(torch.cat(zs).float())[None])[0]
    whole = ((whole.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    got = np.concatenate(frames).astype(np.float32)
    err = np.abs(got[1:] - whole[1:])
    assert err.max() <= (1.0 if dtype == torch.float32 else 4.0) and err.mean() <= (0.01 if dtype == torch.float32 else 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_reference_decoder_streams_from_the_first_image_warped_by_the_camera(dtype):
    """With a reference decoder the engine keeps the last frame (at first the image it starts
    from) and warps it by the rig's cameras; its frames equal the whole-clip reference decode of
    the same latents from that image with the clip's frame maps."""
    from controls.camera import clip_frame_maps
    from train.data import to_pixels

    e = _engine(dtype=dtype, reference=True)
    torch.nn.init.zeros_(e.ae.decoder.gate.bias)                  # the gate half open: the reference matters
    first = e.reset(_image(), seed=2)
    assert torch.equal(e.decoder.last.float(), to_pixels(first)[None].to(dtype).float())
    controls = np.tile([2.5, 0.5, 0, 0.1, 0, 0, 0.01], (12, 1))
    zs, frames = [e.state.prev], [first[None]]
    for k in range(3):
        frames.append(e.step(controls[4 * k:4 * k + 4]))
        zs.append(e.state.prev)
    Ks, w2cs = _rig_path(e, controls)
    maps = torch.from_numpy(clip_frame_maps(Ks, w2cs, e.size, e.size, 4))[None]
    ref = VideoAutoencoder(e.ae.config)
    ref.load_state_dict({k: v.float() for k, v in e.ae.state_dict().items()})
    with torch.no_grad():
        whole = ref.decode(ref.denormalize(torch.cat(zs).float())[None], maps, to_pixels(first)[None])[0]
    whole = ((whole.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    err = np.abs(np.concatenate(frames).astype(np.float32)[1:] - whole[1:])
    assert err.max() <= (1.0 if dtype == torch.float32 else 6.0) and err.mean() <= (0.01 if dtype == torch.float32 else 0.6)


def test_a_pose_reference_decoder_streams_the_last_frame_warped_per_bone():
    """A pose model whose reference decoder warps per bone: the engine warps the first image from
    the first frame's pose, then each last frame from the last commanded pose; its frames equal the
    whole-clip decode with the clip's point fields (controls/bone_warp.py), and differ from the
    unwarped reference's."""
    from controls.bone_warp import clip_pose_points
    from controls.landmarks import neutral_pose
    from train.data import to_pixels

    e = _engine(control="pose", reference=True, dtype=torch.float32)
    e.ae.config = replace(e.ae.config, pose_warp=True)
    torch.nn.init.zeros_(e.ae.decoder.gate.bias)
    rng = np.random.default_rng(4)
    poses = np.stack([neutral_pose()] * 13).astype(np.float32)
    poses[:, :, 0] += np.linspace(0, 0.15, 13)[:, None]             # the body walks sideways
    poses[:, :, :2] += rng.normal(0, 0.005, (13, 33, 2))
    first = e.reset(_image(), seed=2, pose=poses[0])
    zs, frames = [e.state.prev], [first[None]]
    for k in range(3):
        frames.append(e.step(poses[1 + 4 * k:5 + 4 * k]))
        zs.append(e.state.prev)
    maps = torch.from_numpy(clip_pose_points(poses, e.size, 4))[None]
    with torch.no_grad():
        raw = e.ae.denormalize(torch.cat(zs).float())[None]
        whole = e.ae.decode(raw, maps, to_pixels(first)[None])[0]
        plain = e.ae.decode(raw, None, to_pixels(first)[None])[0]
    to_u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    got = np.concatenate(frames).astype(np.float32)[1:]
    assert np.abs(got - to_u8(whole)[1:]).max() <= 1.0
    assert np.abs(got - to_u8(plain)[1:]).mean() > 1.0


def test_the_pixel_loop_engine_equals_the_rollout_that_recycles_the_frames_shown():
    """With ``reencode`` the engine recycles the frames it showed, encoded again; the rollout with
    PixelLoop as its recycle makes the same frames, and both differ from recycling the latent."""
    from controls.camera import clip_camera_tokens, clip_frame_maps
    from model.autoencoder import PixelLoop
    from model.sampling import rollout_one_step
    from train.data import to_pixels

    e = _engine(reference=True, reencode=True, dtype=torch.float32)
    torch.nn.init.zeros_(e.ae.decoder.gate.bias)
    first = e.reset(_image(), seed=5)
    controls = np.tile([2.0, -0.5, 0, 0.1, 0, 0, 0], (12, 1))
    got = np.concatenate([e.step(controls[4 * k:4 * k + 4]) for k in range(3)])
    Ks, w2cs = _rig_path(e, controls)
    ctrl = torch.from_numpy(clip_camera_tokens(Ks, w2cs, e.size, e.size, e.grid, 4))[None]
    maps = torch.from_numpy(clip_frame_maps(Ks, w2cs, e.size, e.size, 4))[None]
    x0 = to_pixels(first)[None]
    with torch.no_grad():
        z0 = e.ae.normalize(e.ae.encode_image(x0).float())
        loop, shown = PixelLoop(e.ae, x0), []
        loop.start(z0)

        def recycle(k, z):
            frames, z_in = loop(z, maps[:, k - 1])
            shown.append(frames)
            return z_in

        latents = rollout_one_step(e.dit, z0, ctrl, 3, torch.Generator().manual_seed(5), None, recycle)
        plain = rollout_one_step(e.dit, z0, ctrl, 3, torch.Generator().manual_seed(5))
    want = ((torch.cat(shown, 1)[0].clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(got.astype(np.float32) - want).max() <= 1.0
    assert torch.allclose(latents[:, 1], plain[:, 1])              # the first step recycles nothing yet
    assert not torch.allclose(latents[:, 2:], plain[:, 2:], atol=1e-3)


def test_the_pixel_loop_moves_the_last_frame_shown_to_the_coming_poses_before_encoding_it():
    """``PixelLoop.warped``: a still body (identity points) or a body that uncovers everything
    (no pixel in view) encodes the last frame held; a moving body encodes the last frame moved."""
    from controls.bone_warp import OUTSIDE, identity_points
    from model.autoencoder import PixelLoop
    from model.warp import warp_reference
    from train.data import to_pixels

    e = _engine(reference=True, reencode=True, dtype=torch.float32)
    x0 = to_pixels(e.reset(_image(), seed=1))[None]
    with torch.no_grad():
        loop = PixelLoop(e.ae, x0)
        held = e.ae.normalize(e.ae.encode_chunks(x0[:, None].expand(-1, 5, -1, -1, -1)).float())
        still = identity_points(e.size)[None, None].expand(1, 4, -1, -1, -1)
        assert torch.allclose(loop.warped(still, torch.float32), held, atol=1e-4)
        assert torch.allclose(loop.warped(torch.full_like(still, OUTSIDE), torch.float32), held, atol=1e-4)
        moved = still + torch.tensor([0.25, 0.0])                 # every pixel from a quarter further right
        want_rgb = warp_reference(x0, moved)
        want_rgb = torch.where(want_rgb[:, :, 3:] > 0, want_rgb[:, :, :3], x0[:, None])
        want = e.ae.normalize(e.ae.encode_chunks(torch.cat([x0[:, None], want_rgb], 1)).float())
        got = loop.warped(moved, torch.float32)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, held, atol=1e-2)


def test_same_seed_same_frames_other_seed_other_frames():
    ctrl = np.tile([2.0, 0, 0, 0.1, 0, 0, 0], (4, 1))
    runs = []
    for seed in (3, 3, 4):
        e = _engine()
        e.reset(_image(), seed=seed)
        runs.append(np.stack([e.step(ctrl) for _ in range(3)]))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_memory_is_flat_over_a_long_stream():
    e = _engine()
    e.reset(_image(), seed=0)
    ctrl = np.tile([1.0, 0, 0, 0.1, 0, 0, 0], (4, 1))
    for _ in range(40):
        e.step(ctrl)
    ptr, before = e.cache.k.data_ptr(), rss_mb()
    for _ in range(360):                      # 1440 video frames
        e.step(ctrl)
    assert e.cache.k.data_ptr() == ptr
    assert rss_mb() - before < 20.0
    assert e.state.frame_index == 401


def test_bad_controls_are_clear_errors():
    e = _engine()
    with pytest.raises(RuntimeError, match="reset"):
        e.step(np.zeros(7))
    e.reset(_image())
    with pytest.raises(ControlError, match="shape"):
        e.step(np.zeros(5))
    with pytest.raises(ControlError):
        e.step(None)
    out = e.step(np.array([np.nan, np.inf, 0, 0, 0, 0, 0]))    # non-finite values are ignored
    assert out.shape == (4, 32, 32, 3)


def test_pose_engine():
    e = _engine("pose")
    e.reset(_image())
    lm = np.random.default_rng(0).random((33, 4)).astype(np.float32)
    assert e.step(lm).shape == (4, 32, 32, 3)
    with pytest.raises(ControlError):
        e.step(np.zeros(7))


def test_pose_engine_two_frames_per_latent():
    e = _engine("pose", fpl=2)
    e.reset(_image())
    lm = np.random.default_rng(0).random((2, 33, 4)).astype(np.float32)
    assert e.step(lm).shape == (2, 32, 32, 3)
    assert e.step(lm[0]).shape == (2, 32, 32, 3)
    with pytest.raises(ControlError, match=r"\(2, 33, 4\)"):
        e.step(np.zeros((4, 33, 4)))


def test_an_autoencoder_and_generator_that_do_not_fit_are_refused():
    ae = VideoAutoencoder(replace(AE_PRESETS["tiny"], frames_per_latent=2))
    with pytest.raises(ValueError, match="packs 2 video frames per latent, its generator 4"):
        StreamingEngine(ae, VideoDiT(replace(PRESETS["tiny"], control="pose")))
    with pytest.raises(ValueError, match="16-channel"):
        StreamingEngine(VideoAutoencoder(AE_PRESETS["tiny-wide"]), VideoDiT(PRESETS["tiny"]))


@pytest.mark.parametrize("shape", [(10, 30, 3), (30, 10, 4), (17, 17)])
def test_prepare_image_any_shape(shape):
    a = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    out = prepare_image(a, 32)
    assert out.shape == (32, 32, 3) and out.flags.writeable     # torch.from_numpy warns on read-only arrays
