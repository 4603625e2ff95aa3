"""The adversarial decoder fine-tune (train/decoder_gan.py): the encoder and latent space stay exactly
as they were, the decoder moves, the stacks it is judged on are what a viewer sees across a
latent boundary, and the losses do what they claim."""
import numpy as np
import pytest
import torch

from data.shards import ShardReader
from model.autoencoder import VideoAutoencoder
from model.patch_discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from train import losses
from train.config import resolve
from train.decoder_gan import START, STACK, STILL, StackSampler
from train.loop import train
from model.warp import warp_reference


def _cfg(stage, data, run_dir, **kw):
    return resolve("tiny", stage, dict(data=str(data), run_dir=str(run_dir), **kw))


@pytest.mark.parametrize("gan_loss", ["relativistic", "hinge"])
def test_the_decoder_stage_trains_only_the_decoder(tiny_data, tmp_path, gan_loss):
    train(_cfg("autoencoder", tiny_data, tmp_path))
    final = train(_cfg("decoder", tiny_data, tmp_path, gan_loss=gan_loss, steps=3, eval_every=3))
    old = VideoAutoencoder.from_pretrained(tmp_path / "autoencoder" / "final" / "model").state_dict()
    new_ae = VideoAutoencoder.from_pretrained(final / "model")
    new = new_ae.state_dict()
    assert new_ae.config == VideoAutoencoder.from_pretrained(tmp_path / "autoencoder" / "final" / "model").config
    for k in old:
        if k.startswith("encoder."):
            assert torch.equal(old[k], new[k]), k                 # the latent space every generator uses
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("decoder."))
    PatchDiscriminator.from_pretrained(final / "discriminator")
    log = (tmp_path / "decoder" / "log.csv").read_text()
    assert "d_loss" in log and "g_adv" in log and "fm" in log
    ev = (tmp_path / "decoder" / "eval.jsonl").read_text()
    assert "val_detail" in ev and "val_pulse" in ev


def test_stacks_are_consecutive_frames_across_a_latent_boundary(tiny_data):
    reader = ShardReader(tiny_data / "train")
    s = StackSampler(reader, fpl=4, crop=16, still_fraction=0.3)
    pp, prev, cur, kind, maps = s.sample(64, np.random.default_rng(0))
    assert cur.shape == (64, 5, 3, 16, 16) and set(kind.tolist()) == {STACK, START, STILL}
    assert maps.shape == (64, 2, 4, 3, 3)
    for b in range(64):
        if kind[b] == STILL:
            assert (cur[b] == cur[b, :1]).all() and torch.equal(prev[b], cur[b]) and torch.equal(pp[b], cur[b])
            assert torch.equal(maps[b], torch.eye(3).expand(2, 4, 3, 3))
        else:
            assert torch.equal(cur[b, 0], prev[b, -1])            # the context frame ends the previous chunk
            if kind[b] == STACK:
                assert torch.equal(prev[b, 0], pp[b, -1])
            else:
                assert (pp[b] == pp[b, :1]).all()                 # START: the first frame, coded alone


def test_the_patch_discriminator_judges_every_frame_of_the_stack():
    torch.manual_seed(0)
    d = PatchDiscriminator(PatchDiscriminatorConfig(frames=5))
    x = torch.randn(2, 5, 3, 64, 64, requires_grad=True)
    logits, feats = d(x)
    assert logits.shape == (2, 8, 8) and len(feats) == 3
    logits.sum().backward()
    assert all(x.grad[:, f].abs().sum() > 0 for f in range(5))   # the context frame counts too
    with pytest.raises(ValueError, match="stacks of 5"):
        d(torch.randn(1, 4, 3, 64, 64))


def test_adversarial_decoder_losses():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([-2.0, 0.5])
    assert losses.hinge_d_loss(real, fake) == pytest.approx((0 + 1.5) / 2 + (0 + 1.5) / 2)
    assert losses.hinge_g_loss(fake) == pytest.approx(0.75)
    f = [torch.ones(2, 3), torch.zeros(2, 4)]
    r = [torch.zeros(2, 3, requires_grad=True), torch.ones(2, 4)]
    fm = losses.feature_matching_loss(f, r)
    assert fm.item() == pytest.approx(1.0) and not fm.requires_grad     # the real side is detached
    w = torch.ones(3, requires_grad=True)
    x = torch.tensor([1.0, 2.0, 3.0])
    rec, adv = (w * x).sum(), 0.5 * (w * x).sum()
    assert losses.adaptive_weight(rec, adv, w).item() == pytest.approx(2.0, rel=1e-3)


def test_the_sampler_maps_warp_the_context_frame_onto_the_coming_frames(tiny_data):
    """On the crop, the context frame warped by each map matches the coming frame where it was in
    view far better than the frame repeated, or than the maps with mirroring ignored (rotation-only
    homographies, so parallax leaves a small error)."""
    reader = ShardReader(tiny_data / "train")
    s = StackSampler(reader, fpl=4, crop=24, still_fraction=0.0)
    pp, prev, cur, kind, maps = s.sample(64, np.random.default_rng(1))
    assert torch.equal(cur[:, 0], prev[:, -1])
    maps = maps[:, 1]                                             # cur's frames to its context frame

    def error(m):
        ref = warp_reference(cur[:, 0], m)                      # (B, 4, 4, c, c)
        mask = ref[:, :, 3:] > 0
        return ((ref[:, :, :3] - cur[:, 1:]).abs() * mask).sum() / (3 * mask.sum()), mask

    warped, mask = error(maps)
    repeat = ((cur[:, :1] - cur[:, 1:]).abs() * mask).sum() / (3 * mask.sum())
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    assert mask.float().mean() > 0.5
    assert warped < 0.75 * repeat, (warped, repeat)
    assert warped < 0.6 * error(mirror @ maps @ mirror)[0]


def test_the_sampler_warps_avatar_crops_per_bone_onto_the_coming_frames(tiny_avatar):
    """With ``pose_warp`` the maps of avatar clips are per-bone point fields on the crop: the
    context frame warped by them matches the coming frames far better than the frame repeated,
    and a still's field is the identity (the gap is wider at 128 px: docs/training.md)."""
    reader = ShardReader(tiny_avatar / "train")
    s = StackSampler(reader, fpl=4, crop=24, still_fraction=0.2, pose_warp=True)
    pp, prev, cur, kind, maps = s.sample(64, np.random.default_rng(2))
    assert maps.shape == (64, 2, 4, 24, 24, 2)
    moving = kind != STILL
    ref = warp_reference(cur[moving, 0], maps[moving, 1])                     # (B, 4, 4, c, c)
    mask = ref[:, :, 3:] > 0
    warped = ((ref[:, :, :3] - cur[moving, 1:]).abs() * mask).sum() / (3 * mask.sum())
    repeat = ((cur[moving, :1] - cur[moving, 1:]).abs() * mask).sum() / (3 * mask.sum())
    assert mask.float().mean() > 0.7
    assert warped < 0.85 * repeat, (warped, repeat)       # 32 px bodies: a limb is a pixel or two wide
    still = warp_reference(cur[~moving, 0], maps[~moving, 1])
    assert torch.allclose(still[:, :, :3], cur[~moving, :1].expand(-1, 4, -1, -1, -1), atol=1e-5)
    assert bool((still[:, :, 3] == 1).all())
    plain = StackSampler(reader, fpl=4, crop=24, still_fraction=0.2)
    assert plain.sample(4, np.random.default_rng(2))[4].shape == (4, 2, 4, 3, 3)


def test_lagging_samples_decode_the_chunk_befores_latents_against_this_chunks_truth(tiny_avatar, tmp_path):
    """``latent_lag``: a lagging sample's decoder input is the latents of the chunk before (the
    chunk's own truth stays the target), and its reference is never wrong or missing."""
    from train.decoder_gan import DecoderGanStage

    train(_cfg("autoencoder", tiny_avatar, tmp_path))
    stage = DecoderGanStage(_cfg("decoder", tiny_avatar, tmp_path, reference=True, pose_warp=True, latent_lag=1.0,
                                 latent_noise=0.0, still_fraction=0.0, batch_size=6))
    rng = np.random.default_rng(0)
    cur, z_cur, z_prev_in, ctx, ref = stage._sample(0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    pp, prev, cur2, kind, _ = stage.sampler.sample(6, rng)
    assert torch.equal(cur, cur2)
    with torch.no_grad():
        z = stage.ae.encode_chunks(torch.cat([prev, pp]))
    stack = kind == STACK
    assert stack.any()
    assert torch.allclose(z_cur[stack], z[:6][stack], atol=1e-5)
    assert torch.allclose(z_prev_in[stack], z[6:][stack], atol=1e-5)
    assert bool((ref[stack][:, :, 3].flatten(1).amax(1) > 0).all())


def test_the_reference_decoder_stage_keeps_the_encoder_and_learns_the_reference(tiny_data, tmp_path):
    train(_cfg("autoencoder", tiny_data, tmp_path))
    final = train(_cfg("decoder", tiny_data, tmp_path, reference=True, steps=3, eval_every=3))
    old = VideoAutoencoder.from_pretrained(tmp_path / "autoencoder" / "final" / "model")
    new = VideoAutoencoder.from_pretrained(final / "model")
    assert new.config.reference and not old.config.reference
    o, n = old.state_dict(), new.state_dict()
    assert all(torch.equal(o[k], n[k]) for k in o if k.startswith("encoder."))
    assert any(not torch.equal(n[k], torch.zeros_like(n[k])) for k in n if k.startswith("decoder.ref_full.2"))


def test_the_reference_flow_is_trained_from_zero(tiny_data, tmp_path):
    """``ref_flow=true``: the decoder gains the flow head at zero and the stage moves it (its gradient
    reaches it through the bicubic resampling of the reference; here beside the motion term);
    ``ref_flow`` alone is refused."""
    from train.config import ConfigError

    train(_cfg("autoencoder", tiny_data, tmp_path))
    final = train(_cfg("decoder", tiny_data, tmp_path, reference=True, ref_flow=True, motion_weight=0.5, steps=3,
                       eval_every=3))
    new = VideoAutoencoder.from_pretrained(final / "model")
    assert new.config.ref_flow
    assert new.decoder.flow.weight.abs().max() > 0
    with pytest.raises(ConfigError):
        _cfg("decoder", tiny_data, tmp_path, ref_flow=True)


def test_a_continued_fine_tune_makes_the_reference_branch_light_and_keeps_its_discriminator(tiny_data, tmp_path):
    """``ref_kernel=1``: the stage makes the reference branch's second convs 1x1 (their taps summed),
    trains them and saves the lighter decoder. ``init`` and ``d_init`` continue another decoder run
    with its discriminator. ``ref_kernel`` without a reference decoder, and ``d_init`` outside the
    decoder stage, are refused."""
    from model.patch_discriminator import PatchDiscriminator
    from train.config import ConfigError

    train(_cfg("autoencoder", tiny_data, tmp_path))
    first = train(_cfg("decoder", tiny_data, tmp_path, reference=True, steps=3, eval_every=3))
    critic = PatchDiscriminator.from_pretrained(first / "discriminator").state_dict()
    final = train(_cfg("decoder", tiny_data, tmp_path / "light", reference=True, ref_kernel=1, steps=3, eval_every=3,
                       init=str(first / "model"), d_init=str(first / "discriminator"), d_lr=1e-12))
    new = VideoAutoencoder.from_pretrained(final / "model")
    assert new.config.ref_kernel == 1 and new.config.reference
    assert new.decoder.ref_full[-1].weight.shape[-2:] == (1, 1)
    kept = PatchDiscriminator.from_pretrained(final / "discriminator").state_dict()
    assert all(torch.allclose(kept[k], v, atol=1e-6) for k, v in critic.items())    # started from it (lr ~0)
    with pytest.raises(ConfigError):
        _cfg("decoder", tiny_data, tmp_path, ref_kernel=1)
    with pytest.raises(ConfigError):
        _cfg("adversarial", tiny_data, tmp_path, d_init=str(first / "discriminator"))
