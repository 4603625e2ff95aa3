"""Every stage of the recipe runs on the tiny preset, each from the previous stage's model;
resuming gives the same weights as an uninterrupted run."""
import json

import pytest
import torch

from model.autoencoder import VideoAutoencoder
from model.config import ConfigError
from model.dit import VideoDiT
from model.discriminator import Discriminator
from train.config import RECIPE, resolve
from train.loop import train


def _cfg(stage, data, run_dir, **kw):
    return resolve("tiny", stage, dict(data=str(data), run_dir=str(run_dir), **kw))


@pytest.mark.parametrize("reproject", [False, True])
def test_all_stages_chain(tiny_data, tmp_path, reproject):
    for stage in RECIPE:
        final = train(_cfg(stage, tiny_data, tmp_path, reproject=reproject))
        assert final.is_dir(), stage
        log = (tmp_path / stage / "log.csv").read_text().splitlines()
        assert len(log) >= 2, stage
        assert (tmp_path / stage / "loss.png").is_file()
        saved = json.loads((tmp_path / stage / "config.json").read_text())
        assert saved["stage"] == stage
    VideoAutoencoder.from_pretrained(tmp_path / "autoencoder" / "final" / "model")
    for s in ("teacher", "adapt", "distill"):
        assert VideoDiT.from_pretrained(tmp_path / s / "final" / "model").config.reproject == reproject
    for s in ("adversarial", "long"):
        VideoDiT.from_pretrained(tmp_path / s / "final" / "generator")
        Discriminator.from_pretrained(tmp_path / s / "final" / "discriminator")
    assert list((tmp_path / "adapt" / "samples").glob("*.mp4"))


def _weights(path):
    return VideoAutoencoder.from_pretrained(path).state_dict()


def test_resume_equals_uninterrupted(tiny_data, tmp_path):
    train(_cfg("autoencoder", tiny_data, tmp_path / "a", steps=4, ckpt_every=2))
    train(_cfg("autoencoder", tiny_data, tmp_path / "b", steps=2, ckpt_every=2))
    train(_cfg("autoencoder", tiny_data, tmp_path / "b", steps=4, ckpt_every=2))      # resumes at step 2
    a = _weights(tmp_path / "a" / "autoencoder" / "checkpoints" / "step-0000004" / "model")
    b = _weights(tmp_path / "b" / "autoencoder" / "checkpoints" / "step-0000004" / "model")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_dry_run_builds_but_trains_nothing(tiny_data, tmp_path, capsys):
    train(_cfg("autoencoder", tiny_data, tmp_path), dry_run=True)
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"]["model"] > 0
    assert not (tmp_path / "autoencoder" / "checkpoints").exists()


def test_a_mix_of_sources_trains_with_one_cache_per_source(tiny_data, tmp_path):
    from data.build import build

    photo = tmp_path / "photo"
    build("photo", "train", clips=3, n_frames=21, size=32, out=str(photo), per_shard=3, workers=1)
    build("photo", "val", clips=1, n_frames=21, size=32, out=str(photo), per_shard=1, workers=1)
    run = tmp_path / "run"
    train(_cfg("autoencoder", tiny_data, run))
    train(_cfg("teacher", f"{tiny_data},{photo}", run, latent_clips=0))
    caches = sorted(p.name for p in (run / "latents").glob("train-*.npz"))
    assert len(caches) == 2 and caches[0].endswith("-6.npz") != caches[1].endswith("-6.npz")   # 6 world, 3 photo
    last = json.loads((run / "teacher" / "eval.jsonl").read_text().splitlines()[-1])   # rollouts of each source
    assert {"psnr_model", "psnr_model_photo", f"psnr_model_{tiny_data.name}", "psnr_repeat_photo"} <= set(last)


def test_discriminator_warmup_holds_the_generator(tiny_data, tmp_path):
    """With d_warmup the first steps train only the discriminator: the generator stays exactly
    its distilled start while the discriminator moves; after the warm-up both train."""
    for stage in ("autoencoder", "teacher", "adapt", "distill"):
        train(_cfg(stage, tiny_data, tmp_path))
    distilled = VideoDiT.from_pretrained(tmp_path / "distill" / "final" / "model").state_dict()
    train(_cfg("adversarial", tiny_data, tmp_path, steps=2, d_warmup=2, ema=0.0, ckpt_every=2))
    out = tmp_path / "adversarial" / "checkpoints" / "step-0000002"
    g = VideoDiT.from_pretrained(out / "generator").state_dict()
    assert all(torch.equal(g[k], distilled[k]) for k in g)
    d0 = Discriminator.from_generator(VideoDiT.from_pretrained(tmp_path / "adapt" / "final" / "model")).state_dict()
    d = Discriminator.from_pretrained(out / "discriminator").state_dict()
    assert any(not torch.equal(d[k], d0[k]) for k in d if k.startswith("backbone.blocks"))
    log = (tmp_path / "adversarial" / "log.csv").read_text()
    assert "g_loss" not in log.splitlines()[0]
    train(_cfg("adversarial", tiny_data, tmp_path, steps=4, d_warmup=2, ema=0.0, ckpt_every=2))   # resumes
    g4 = VideoDiT.from_pretrained(tmp_path / "adversarial" / "final" / "generator").state_dict()
    assert any(not torch.equal(g4[k], distilled[k]) for k in g4)


def test_long_burn_in_is_the_generators_own_rollout(tiny_data, tmp_path):
    """With long_burn_in the long stage's video first runs for a random number of latent frames
    exactly as the streaming generator would (same noise, controls and KV cache); the trained
    segments and their discriminator windows then start after it, with the overlap taken from
    the burn-in."""
    import numpy as np

    from model.sampling import rollout_one_step
    from train.stages import build_stage

    for stage in ("autoencoder", "teacher", "adapt", "distill", "adversarial"):
        train(_cfg(stage, tiny_data, tmp_path))
    st = build_stage(_cfg("long", tiny_data, tmp_path, long_burn_in=7))
    burns = set()
    for s in range(40):
        st._new_video(np.random.default_rng(s), torch.Generator().manual_seed(s))
        burns.add(st.burn)
        if st.burn >= 3:
            break
    assert st.burn >= 3 and burns <= set(range(8))
    b = st.burn
    ref = rollout_one_step(st.dit, st.video[0], st._ctrl(st.ctrl), b, torch.Generator().manual_seed(s), st.warp)
    torch.testing.assert_close(st.video[-1], ref[:, b])
    assert int(st.cache.positions.max()) == b and st._start(0) == 1 + b
    inp = st._segment_inputs(0, torch.Generator().manual_seed(1))
    assert inp.positions.tolist() == list(range(1 + b, 1 + b + st.S))
    o = st._overlap(0)
    assert o == min(st.overlap, b) and o > 0
    window, w_ctrl, w_warp = st._window(0, inp.rolled)
    assert window.shape[1] == w_ctrl.shape[1] == w_warp.shape[1] == 1 + o + st.S
    torch.testing.assert_close(window[:, 1:1 + o], ref[:, b - o + 1:b + 1])
    torch.testing.assert_close(w_ctrl[:, 1:], st.ctrl[:, 1 + b - o:1 + b + st.S])
    # the generator's loss back-propagates through the segment that follows the burn-in
    st.seg_inputs = inp
    loss, _ = st.loss("gen0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in st.dit.parameters())
    with pytest.raises(ValueError, match="long_burn_in"):
        build_stage(_cfg("adversarial", tiny_data, tmp_path, long_burn_in=2))


def test_long_stage_evaluates_the_drift_of_long_rollouts(tiny_data, tmp_path):
    for stage in ("autoencoder", "teacher", "adapt", "distill", "adversarial"):
        train(_cfg(stage, tiny_data, tmp_path))
    train(_cfg("long", tiny_data, tmp_path, long_burn_in=2))
    ev = [json.loads(x) for x in (tmp_path / "long" / "eval.jsonl").read_text().splitlines()]
    last = ev[-1]
    assert last["long_latents"] == 5                    # all of the tiny clips (5 latents after the first; 2 + 6 asked)
    assert last["long_last_mse"] > 0 and 0 < last["long_rms_ratio"] < 10


def test_decoder_only_fine_tune_keeps_the_latent_space(tiny_data, tmp_path):
    """ae_train=decoder on a mix: the encoder (and the latent statistics the DiTs normalise with) stay
    exactly those of the init, the decoder moves, and the evaluation reports each source."""
    from data.build import build

    photo = tmp_path / "photo"
    build("photo", "train", clips=3, n_frames=21, size=32, out=str(photo), per_shard=3, workers=1)
    build("photo", "val", clips=1, n_frames=21, size=32, out=str(photo), per_shard=1, workers=1)
    base = train(_cfg("autoencoder", tiny_data, tmp_path / "base"))
    run = tmp_path / "ft"
    final = train(_cfg("autoencoder", f"{tiny_data},{photo}", run, init=str(base / "model"), ae_train="decoder"))
    before, after = VideoAutoencoder.from_pretrained(base / "model"), VideoAutoencoder.from_pretrained(final / "model")
    assert after.config == before.config
    for k, v in before.encoder.state_dict().items():
        assert torch.equal(v, after.encoder.state_dict()[k]), k
    assert any(not torch.equal(v, after.decoder.state_dict()[k]) for k, v in before.decoder.state_dict().items())
    last = json.loads((run / "autoencoder" / "eval.jsonl").read_text().splitlines()[-1])
    assert {"val_psnr", "val_psnr_photo", f"val_psnr_{tiny_data.name}"} <= set(last)
    with pytest.raises(Exception, match="init"):
        _cfg("autoencoder", tiny_data, run, ae_train="decoder")


@pytest.mark.parametrize("ae_preset, field, value", [("tiny-wide", "latent_channels", 16),
                                                      ("tiny-f2", "frames_per_latent", 2)])
def test_a_new_latent_space_and_its_dit_start_from_the_old_chain(tiny_data, tmp_path, ae_preset, field, value):
    """transfer= moves the chain to another latent space (more channels, or fewer frames per
    latent): the autoencoder stage starts the new preset from the trained old autoencoder, and a
    DiT stage of the new run starts from the old run's model (model/dit.py transfer_weights)
    instead of its previous stage; the stages after it chain as usual."""
    old = tmp_path / "old"
    for stage in ("autoencoder", "teacher", "adapt"):
        train(_cfg(stage, tiny_data, old))
    new = tmp_path / "new"
    ae = train(_cfg("autoencoder", tiny_data, new, ae_preset=ae_preset,
                    transfer=str(old / "autoencoder" / "final" / "model")))
    assert getattr(VideoAutoencoder.from_pretrained(ae / "model").config, field) == value
    adapt = train(_cfg("adapt", tiny_data, new, transfer=str(old / "adapt" / "final" / "model")))
    assert getattr(VideoDiT.from_pretrained(adapt / "model").config, field) == value
    assert not (new / "teacher").exists()
    if field == "frames_per_latent":       # controls and rollouts of 2-frame latents, to the end
        for stage in ("distill", "adversarial", "long"):
            train(_cfg(stage, tiny_data, new))
        assert VideoDiT.from_pretrained(new / "long" / "final" / "generator").config.frames_per_latent == 2


def test_matching_aware_discriminator_sees_real_videos_under_other_clips_controls(tiny_data, tmp_path):
    """d_mismatch: each discriminator step also scores the real windows under the next clip's
    controls (the first frame's own), and that term, weighted, is added to its loss."""
    import numpy as np

    from train.stages import build_stage

    for stage in ("autoencoder", "teacher", "adapt", "distill"):
        train(_cfg(stage, tiny_data, tmp_path))
    with pytest.raises(ValueError, match="batch_size >= 2"):
        build_stage(_cfg("adversarial", tiny_data, tmp_path, d_mismatch=1.0, batch_size=1))
    stage = build_stage(_cfg("adversarial", tiny_data, tmp_path, d_mismatch=0.5, batch_size=2))
    calls, score = [], stage._d

    def spy(z, ctrl, t, eps, warp):
        calls.append((z, ctrl))
        return score(z, ctrl, t, eps, warp)

    def disc_loss():
        calls.clear()
        return stage.loss("disc0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))

    stage._d = spy
    loss, metrics = disc_loss()
    assert len(calls) == 5                                   # real, fake, their perturbed copies, mismatched
    (real, ctrl), (mm_z, wrong) = calls[0], calls[4]
    assert torch.equal(mm_z, real)
    assert torch.equal(wrong[:, 0], ctrl[:, 0])              # the first frame keeps its own controls
    assert torch.equal(wrong[0, 1:], ctrl[1, 1:]) and torch.equal(wrong[1, 1:], ctrl[0, 1:])
    assert not torch.equal(wrong, ctrl)
    # d_mismatch_on="first": the real windows after the next clip's first frame, under their own controls
    stage.cfg.d_mismatch_on = "first"
    loss_first, metrics_first = disc_loss()
    (real, ctrl), (mm_z, mm_ctrl) = calls[0], calls[4]
    assert torch.equal(mm_ctrl, ctrl) and torch.equal(mm_z[:, 1:], real[:, 1:])
    assert torch.equal(mm_z[0, 0], real[1, 0]) and torch.equal(mm_z[1, 0], real[0, 0])
    stage.cfg.d_mismatch = 0.0
    base, base_metrics = disc_loss()
    assert len(calls) == 4 and "d_mismatch" not in base_metrics
    assert abs((loss - base).item() - 0.5 * metrics["d_mismatch"]) < 1e-5
    assert abs((loss_first - base).item() - 0.5 * metrics_first["d_mismatch"]) < 1e-5
    with pytest.raises(ConfigError, match="d_mismatch_on"):
        _cfg("adversarial", tiny_data, tmp_path, d_mismatch_on="last")


def test_on_policy_distillation_targets_the_teachers_frame_after_the_generators_own(tiny_data, tmp_path):
    """teacher_weight: at teacher_latents frames of a trained segment the multi-step teacher (the
    adapt model) continues the generator's own video (its burn-in and the segment's rolled-out
    frames, not the ground truth) from the same noise as the one-step frame, and the weighted
    squared error to it joins the generator's loss."""
    import numpy as np

    import train.adversarial as adversarial
    import train.stages as stages
    from model.sampling import rollout_one_step

    for stage in ("autoencoder", "teacher", "adapt", "distill", "adversarial"):
        train(_cfg(stage, tiny_data, tmp_path))
    with pytest.raises(ValueError, match="teacher forcing"):
        stages.build_stage(_cfg("adversarial", tiny_data, tmp_path, teacher_forcing=True, teacher_weight=1.0))
    with pytest.raises(ConfigError, match="teacher_weight"):
        _cfg("long", tiny_data, tmp_path, teacher_weight=-1.0)
    st = stages.build_stage(_cfg("long", tiny_data, tmp_path, long_burn_in=7, teacher_weight=0.5, teacher_latents=2))
    W = st.teacher.config.window
    assert st.keep == max(st.overlap, W + 1)
    for s in range(40):
        st._new_video(np.random.default_rng(s), torch.Generator().manual_seed(s))
        if st.burn >= 3:
            break
    b, a = st.burn, st._start(0)
    ref = rollout_one_step(st.dit, st.video[0], st._ctrl(st.ctrl), b, torch.Generator().manual_seed(s), st.warp)
    inp = st.seg_inputs = st._segment_inputs(0, torch.Generator().manual_seed(1))
    video = torch.cat([ref, inp.rolled], 1)                    # the generator's own frames 0 .. a + S - 1
    calls, real_frame = [], adversarial.causal_frame

    def spy(dit, out, k, noise, control, warp_, steps, shift):
        calls.append(k)
        assert dit is st.teacher and a <= k < a + st.S
        for j in range(max(0, k - W - 1), k):               # every frame the teacher's window reads
            torch.testing.assert_close(out[j], video[:, j])
        assert torch.equal(noise[:, k - 1], inp.noise[:, k - a])    # the one-step frame's own noise
        return real_frame(dit, out, k, noise, control, warp_, steps, shift)

    adversarial.causal_frame = spy
    try:
        loss, metrics = st.loss("gen0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    finally:
        adversarial.causal_frame = real_frame
    assert len(calls) == 2 and len(set(calls)) == 2
    assert metrics["teacher_mse"] > 0
    assert abs(loss.item() - metrics["g_loss"] - 0.5 * metrics["teacher_mse"]) < 1e-4
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in st.dit.parameters())
    assert len(st.video) == 1 + st.keep                    # the window the next segment's teacher reads


def test_truth_weight_regresses_the_segment_onto_the_clips_own_frames(tiny_data, tmp_path):
    """truth_weight: the trained segment's one-step frames (after the generator's own burn-in) are
    regressed onto the ground truth at the same stream positions, the clip the video started from;
    segments past the clip get no target."""
    import numpy as np

    import train.stages as stages

    for stage in ("autoencoder", "teacher", "adapt", "distill", "adversarial"):
        train(_cfg(stage, tiny_data, tmp_path))
    with pytest.raises(ConfigError, match="truth_weight"):
        _cfg("long", tiny_data, tmp_path, truth_weight=-1.0)
    st = stages.build_stage(_cfg("long", tiny_data, tmp_path, long_burn_in=2, truth_weight=0.5))
    for s in range(40):
        st._new_video(np.random.default_rng(s), torch.Generator().manual_seed(s))
        if st.burn >= 1:
            break
    a = st._start(0)
    inp = st.seg_inputs = st._segment_inputs(0, torch.Generator().manual_seed(1))
    loss, metrics = st.loss("gen0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    # the parallel pass with gradients recomputes the rolled-out frames; the target is the truth at a .. a + S - 1
    want = ((inp.rolled.float() - st.gt[:, a:a + st.S].float()) ** 2).mean().item()
    shifted = ((inp.rolled.float() - st.gt[:, a - 1:a - 1 + st.S].float()) ** 2).mean().item()
    assert abs(metrics["truth_mse"] - want) < 1e-3 * want < abs(metrics["truth_mse"] - shifted)
    assert abs(loss.item() - metrics["g_loss"] - 0.5 * metrics["truth_mse"]) < 1e-4
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in st.dit.parameters())
    # a segment past the clip: real windows of other clips, and no truth to regress onto
    st.gt = st.gt[:, :a]
    st.seg_inputs = st._segment_inputs(0, torch.Generator().manual_seed(1))
    _, metrics = st.loss("gen0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert "truth_mse" not in metrics


def test_a_cache_without_frame_maps_is_encoded_again_for_recycled_frames(tiny_data, tmp_path):
    """recycle=frames needs the clips' frame maps: a latent cache written before them is encoded
    again (and left as it is for latent recycling); the check closes the file it reads."""
    import numpy as np

    from model.autoencoder import PRESETS
    from train.diffusion import latent_cache

    ae = VideoAutoencoder(PRESETS["tiny"]).eval()
    cfg = _cfg("adapt", tiny_data, tmp_path)
    assert latent_cache(cfg, ae, "train", 4).frame_maps is not None
    (path,) = (tmp_path / "latents").glob("train-*.npz")
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if k != "frame_maps"}
    np.savez(path, **old)                                              # a cache from before frame maps
    assert latent_cache(cfg, ae, "train", 4).frame_maps is None
    assert latent_cache(_cfg("adversarial", tiny_data, tmp_path, recycle="frames"), ae, "train", 4).frame_maps is not None
    with np.load(path) as z:
        assert "frame_maps" in z.files
        np.testing.assert_array_equal(z["chunks"], old["chunks"])


def test_recycled_frames_are_the_frames_shown_encoded_again(tiny_data, tmp_path):
    """recycle=frames: the adversarial stages' generator takes as its next input the frames a viewer is
    shown, decoded by the streaming reference decoder from the clip's own frame maps and encoded
    again, in the burn-in, the rollout and the gradient pass, as the app's engine does (PixelLoop)."""
    import numpy as np

    from controls.camera import clip_frame_maps
    from data.shards import ShardReader
    from model.autoencoder import PixelLoop, StreamingDecoder
    from train.stages import build_stage

    for stage in ("autoencoder", "teacher", "adapt", "distill"):
        train(_cfg(stage, tiny_data, tmp_path))
    ref_ae = train(_cfg("decoder", tiny_data, tmp_path, reference=True, steps=2, eval_every=2)) / "model"
    train(_cfg("adversarial", tiny_data, tmp_path, ae=str(ref_ae), recycle="frames", steps=2))
    st = build_stage(_cfg("long", tiny_data, tmp_path, ae=str(ref_ae), recycle="frames", long_burn_in=4))
    assert st.ae.config.reference
    # the cache's frame maps are the clip's cameras' (what the reference decoder warps)
    reader = ShardReader(tiny_data / "train")
    F = 1 + 4 * ((reader.frame_shape[0] - 1) // 4)
    np.testing.assert_allclose(st.train.frame_maps[0], clip_frame_maps(reader.truth(0, "K")[:F], reader.truth(0, "w2c")[:F],
                                                                       32, 32, 4), atol=1e-6)
    for s in range(40):
        st._new_video(np.random.default_rng(s), torch.Generator().manual_seed(s))
        if st.burn >= 2:
            break
    b = st.burn
    assert b >= 2 and not torch.allclose(st.frame_maps[:, 1:], torch.eye(3).expand_as(st.frame_maps[:, 1:]))
    # the same video by hand: the engine's loop from the first frame's code
    gen = torch.Generator().manual_seed(s)
    z0 = st.video[0]
    cache = st.dit.new_cache(z0.shape[0])
    ones, zero = torch.ones(z0.shape[0]), torch.zeros(z0.shape[0])
    with torch.no_grad():
        st.dit.step(cache, z0, z0, st._ctrl(st.ctrl[:, 0]), zero, 0, st.warp[:, 0])
        loop = PixelLoop(st.ae, StreamingDecoder(st.ae)(st.ae.denormalize(z0))[:, 0])
        loop.start(z0)
        x, zs = z0, []
        for k in range(1, b + 1):
            zs.append(st.dit.step(cache, x, torch.randn(z0.shape, generator=gen), st._ctrl(st.ctrl[:, k]), ones, k,
                                  st.warp[:, k]))
            x = loop(zs[-1], st.frame_maps[:, k])[1]
    torch.testing.assert_close(st.video[-1], zs[-1])
    torch.testing.assert_close(st.next_in, x)
    assert (x - zs[-1]).abs().mean() > 1e-3                   # not the latent itself
    inp = st._segment_inputs(0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(inp.recycled[:, 0], x)
    with torch.no_grad():                                     # each frame's input: the frame before it, shown and encoded
        y = st.dit.step(cache, x, inp.noise[:, 0], st._ctrl(inp.ctrl[:, 0]), ones, 1 + b, inp.warp[:, 0])
        torch.testing.assert_close(inp.rolled[:, 0], y)
        torch.testing.assert_close(inp.recycled[:, 1], loop(y, st.frame_maps[:, 1 + b])[1])
    st.seg_inputs = inp
    loss, _ = st.loss("gen0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in st.dit.parameters())
    assert torch.equal(st.next_in, inp.after)
    for bad in (dict(stage="adapt"), dict(stage="adversarial", teacher_weight=1.0), dict(stage="long", recycle="pixels")):
        with pytest.raises(ConfigError, match="recycle"):
            _cfg(bad.pop("stage"), tiny_data, tmp_path, **{"recycle": "frames", **bad})


def test_the_frame_critic_judges_decoded_crops_and_its_gradient_reaches_the_generator(tiny_data, tmp_path):
    """frame_weight: a patch critic sees the window's latents decoded by the frozen decoder (each
    latent from the second on, after the last frame of the latent before) on the same random crop
    for the real and the fake window; the D phase trains it with R1 + R2, the G phase's loss adds
    its relativistic loss through the decoder, and the long stage carries it over."""
    import numpy as np

    import train.stages as stages
    from model.patch_discriminator import PatchDiscriminator

    for stage in ("autoencoder", "teacher", "adapt", "distill"):
        train(_cfg(stage, tiny_data, tmp_path))
    for bad in (dict(frame_weight=-1.0), dict(stage="distill", frame_weight=1.0)):
        with pytest.raises(ConfigError, match="frame_weight"):
            _cfg(bad.pop("stage", "adversarial"), tiny_data, tmp_path, **bad)
    st = stages.build_stage(_cfg("adversarial", tiny_data, tmp_path, frame_weight=0.5, crop=16))
    fpl, sf = st.ae.config.frames_per_latent, st.ae.config.spatial_factor
    # the stacks by hand: decoded pairs of consecutive latents, the context the last frame of the pair before
    z = torch.randn(2, 4, st.ae.config.latent_channels, 4, 4)
    st.video = [z[:, 0]]
    box = (1, 2, 2)
    stacks = st._frame_stacks(z, box)
    assert stacks.shape == (2 * 2, 1 + fpl, 3, 2 * sf, 2 * sf)
    with torch.no_grad():
        c = st.ae.denormalize(z[..., 1:3, 2:4])
        d1 = st.ae.decode_step(c[:, 1], c[:, 0])
        d2 = st.ae.decode_step(c[:, 2], c[:, 1])
    torch.testing.assert_close(stacks[0], torch.cat([d1[0, -1:], d2[0]]))
    torch.testing.assert_close(stacks[1, 1:], st.ae.decode_step(c[:, 3], c[:, 2])[0])
    y, x, c_ = st._crop_box(np.random.default_rng(0))
    assert c_ == 16 // sf and 0 <= y <= 4 - c_ and 0 <= x <= 4 - c_
    # the D phase trains the critic; the G phase's loss is the latent one plus the critic's, and reaches the generator
    loss, m = st.loss("disc0", 0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    assert {"fd_loss", "fd_r", "fd_acc"} <= set(m) and abs(m["fd_loss"] - np.log(2)) < 0.5
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in st.frame_disc.parameters())
    assert all(p.grad is None for p in st.dit.parameters())
    st.frame_disc.zero_grad()
    loss, m = st.loss("gen0", 0, np.random.default_rng(1), torch.Generator().manual_seed(1))
    assert abs(loss.item() - m["g_loss"] - 0.5 * m["fg_loss"]) < 1e-4
    loss.backward()
    assert all(p.grad is None for p in st.frame_disc.parameters())
    # the critic's gradient reaches the generator through the decoder: the same G phase with the term off differs
    grads = []
    for w in (0.5, 0.0):
        st.cfg.frame_weight = w
        st.dit.zero_grad()
        st.loss("gen0", 0, np.random.default_rng(1), torch.Generator().manual_seed(1))[0].backward()
        grads.append(torch.cat([p.grad.flatten() for p in st.dit.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0 and not torch.allclose(grads[0], grads[1])
    # the run exports the critic, and the long stage starts from it
    train(_cfg("adversarial", tiny_data, tmp_path, frame_weight=0.5, crop=16))
    saved = PatchDiscriminator.from_pretrained(tmp_path / "adversarial" / "final" / "frame_discriminator")
    lg = stages.build_stage(_cfg("long", tiny_data, tmp_path, frame_weight=0.5, crop=16))
    for k, v in saved.state_dict().items():
        torch.testing.assert_close(lg.frame_disc.state_dict()[k], v)
    train(_cfg("long", tiny_data, tmp_path, frame_weight=0.5, crop=16))
    assert "fg_loss" in (tmp_path / "long" / "log.csv").read_text().splitlines()[0]
