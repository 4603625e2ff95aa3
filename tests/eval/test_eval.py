"""Evaluation pieces: FVD-lite's distance and features, the camera-motion estimator, rollouts."""
import numpy as np
import pytest
import torch

from data.sources import make_clip, split_seed
from eval.camera import camera_errors, rotation_angle_deg
from eval.features import FeatureNetConfig, VideoFeatureNet, frechet_distance, window_features
from eval.pose import PARTS, pooled_pck, pose_errors
from eval.rollout import METHODS, Controls, decode_latents, generate, reconstruct
from model.autoencoder import PRESETS as AE_PRESETS
from model.autoencoder import VideoAutoencoder
from model.config import replace
from model.dit import PRESETS, VideoDiT
from model.runtime import autocast, compute_dtype
from train.data import to_pixels


def test_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    d1 = frechet_distance(a, a + 0.5)
    d2 = frechet_distance(a, a + 1.0)
    assert np.isclose(d1, 8 * 0.25, rtol=1e-3) and np.isclose(d2, 8 * 1.0, rtol=1e-3)   # |mu1 - mu2|^2
    assert frechet_distance(a, 2 * a) > 1.0                                            # covariance counts


def test_window_features_shape():
    net = VideoFeatureNet(FeatureNetConfig(frames=8, size=32, widths=(8, 8, 16, 16), features=12)).eval()
    video = np.random.default_rng(0).integers(0, 255, (33, 48, 48, 3), dtype=np.uint8)
    assert window_features(net, video).shape == (4, 12)
    assert window_features(net, video, stride=4).shape == (7, 12)


def test_camera_estimator_reads_a_rendered_world_and_not_a_frozen_one():
    clip = make_clip("world", 2_000_003, 33, 96)          # a test seed: hills, turning
    truth = camera_errors(clip.frames, clip.K, clip.w2c)
    frozen = camera_errors(np.repeat(clip.frames[:1], 33, 0), clip.K, clip.w2c)
    turned = max(rotation_angle_deg(clip.w2c[f + 4][:3, :3] @ clip.w2c[f][:3, :3].T) for f in range(0, 28, 4))
    assert turned > 2.0                                    # the clip does turn
    assert truth["rot_err"] < 0.5 * frozen["rot_err"], (truth, frozen)


def _tiny(control="camera", reproject=True):
    torch.manual_seed(0)
    ae = VideoAutoencoder(AE_PRESETS["tiny"]).eval()
    dit = VideoDiT(replace(PRESETS["tiny"], control=control, reproject=reproject and control == "camera")).eval()
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return ae, dit


def test_decode_in_chunks_equals_whole_decode():
    ae, _ = _tiny()
    z = torch.randn(1, 7, 8, 4, 4)
    with torch.no_grad():
        whole = ((ae.decode(ae.denormalize(z)).float().clamp(-1, 1) + 1) * 127.5).round()
    chunked = decode_latents(ae, z, chunk=2).astype(np.float32)
    assert chunked.shape == (25, 32, 32, 3)
    assert np.abs(chunked - whole[0].permute(0, 2, 3, 1).numpy()).max() <= 1.0


def test_reconstruct_in_chunks_equals_whole_encode_decode():
    ae, _ = _tiny()
    clip = make_clip("world", 7, 25, 32)
    with torch.no_grad(), autocast(compute_dtype()):
        z = ae.normalize(ae.encode(to_pixels(clip.frames)[None]).float())
    whole = decode_latents(ae, z).astype(np.int16)
    chunked = reconstruct(ae, clip.frames, chunk=2).astype(np.int16)
    assert chunked.shape == clip.frames.shape
    assert np.abs(chunked - whole).max() <= 1


def test_evaluate_scores_the_autoencoder_bound_beside_the_methods(tmp_path):
    from eval.evaluate import evaluate
    from eval.metrics import psnr_per_frame
    from eval.report import table

    ae, dit = _tiny()
    ae.save_pretrained(tmp_path / "autoencoder")
    dit.save_pretrained(tmp_path / "generator")
    r = evaluate(str(tmp_path), ["aapt", "autoencoder"], clips=1, n_frames=21, window=20, features="",
                 revisit=False)
    assert list(r["methods"]) == ["aapt", "autoencoder"] and r["methods"]["autoencoder"]["steps"] is None
    gt = make_clip("world", split_seed("test", 0), 21, 32).frames
    bound = float(psnr_per_frame(reconstruct(ae, gt)[1:21], gt[1:21]).mean())
    assert r["methods"]["autoencoder"]["psnr_1s"] == pytest.approx(bound, abs=1e-4)
    assert r["methods"]["aapt"]["psnr_1s"] != pytest.approx(bound, abs=1e-2)
    assert "| ground truth through the autoencoder (bound) | – |" in table(r)
    with pytest.raises(ValueError, match="at least one"):
        evaluate(str(tmp_path), ["autoencoder"], clips=1, n_frames=21, window=20, features="", revisit=False)


def test_the_no_network_rows_and_the_seen_pixels(tmp_path):
    """``repeat`` holds the first frame, ``warp`` warps it by the commanded rotation; the seen-pixel
    PSNR counts only what was in view in frame 0, and there the warp beats holding the frame."""
    from eval.baselines import warp_baseline
    from eval.evaluate import evaluate, ground_truth, seen_masks
    from eval.metrics import psnr_per_frame

    ae, dit = _tiny()
    ae.save_pretrained(tmp_path / "autoencoder")
    dit.save_pretrained(tmp_path / "generator")
    r = evaluate(str(tmp_path), ["aapt", "repeat", "warp", "warp_recoded"], clips=1, n_frames=25, window=24, features="",
                 revisit=False, first_clip=2)                   # test clip 2 turns (clip 0 walks forward)
    clip = ground_truth("world", 2, 25, 32)
    seen = seen_masks(clip.K, clip.w2c, 32)
    assert seen[0].all() and seen[1:].mean() < 1
    warp = warp_baseline(clip.frames, clip.K, clip.w2c)
    want = float(np.nanmean(psnr_per_frame(warp[1:25], clip.frames[1:25], seen[1:25])))
    assert r["methods"]["warp"]["psnr_1s_seen"] == pytest.approx(want, abs=1e-6)
    assert r["methods"]["warp"]["psnr_1s_seen"] > r["methods"]["repeat"]["psnr_1s_seen"] + 1
    recoded = reconstruct(ae, warp)
    recoded[0] = warp[0]
    assert r["methods"]["warp_recoded"]["psnr_1s"] == pytest.approx(
        float(psnr_per_frame(recoded[1:25], clip.frames[1:25]).mean()), abs=1e-6)
    assert r["methods"]["repeat"]["psnr_1s"] == pytest.approx(
        float(psnr_per_frame(np.repeat(clip.frames[:1], 24, 0), clip.frames[1:25]).mean()), abs=1e-6)


def test_the_pose_models_no_network_warp_moves_the_first_frame_per_bone(tmp_path):
    """For a pose model ``warp`` is the first frame warped per bone by the commanded poses
    (controls/bone_warp.py): on the person it beats holding the first frame."""
    from eval.baselines import pose_warp_baseline
    from eval.evaluate import evaluate, ground_truth
    from eval.metrics import psnr_per_frame

    clip = ground_truth("avatar", 1, 13, 64)
    warp = pose_warp_baseline(clip.frames, clip.landmarks)
    hold = np.repeat(clip.frames[:1], 13, 0)
    person = clip.mask[1:].astype(bool) | clip.mask[:1].astype(bool)
    assert float(np.nanmean(psnr_per_frame(warp[1:], clip.frames[1:], person))) > \
        float(np.nanmean(psnr_per_frame(hold[1:], clip.frames[1:], person))) + 1.0
    ae, dit = _tiny("pose")
    ae.save_pretrained(tmp_path / "autoencoder")
    dit.save_pretrained(tmp_path / "generator")
    r = evaluate(str(tmp_path), ["aapt", "repeat", "warp"], clips=1, n_frames=17, window=16, features="",
                 revisit=False, first_clip=1)
    small = ground_truth("avatar", 1, 17, 32)
    want = pose_warp_baseline(small.frames, small.landmarks)
    assert r["methods"]["warp"]["psnr_1s"] == pytest.approx(float(psnr_per_frame(want[1:], small.frames[1:]).mean()), abs=1e-6)


def test_evaluate_reports_what_a_viewer_sees_and_drives_worlds_with_user_trajectories(tmp_path):
    """Detail kept, pulse and mosaic per window for every method and the autoencoder row, the
    truth's own pulse beside them; ``trajectory`` renders the same worlds under a named behaviour."""
    from eval.evaluate import evaluate, ground_truth
    from eval.metrics import detail_kept, pulse
    from eval.report import table

    ae, dit = _tiny()
    ae.save_pretrained(tmp_path / "autoencoder")
    dit.save_pretrained(tmp_path / "generator")
    r = evaluate(str(tmp_path), ["aapt", "autoencoder"], clips=1, n_frames=41, window=20, features="",
                 revisit=False, dtype="float32", trajectory="turn")
    assert r["trajectory"] == "turn" and r["precision"]["dtype"] == "float32"
    gt = ground_truth("world", 0, 41, 32, "turn").frames
    assert not np.array_equal(gt, make_clip("world", split_seed("test", 0), 41, 32).frames)
    rec = reconstruct(ae, gt, dtype="float32")
    o = r["methods"]["autoencoder"]
    assert len(o["detail"]) == len(o["pulse"]) == len(o["mosaic"]) == 2
    assert o["detail"][0] == pytest.approx(detail_kept(rec[1:20], gt[1:20]))
    assert r["floor"]["pulse"][0] == pytest.approx(pulse(gt[:20]))
    assert "detail kept first → last | pulse | mosaic" in table(r)
    with pytest.raises(ValueError, match="own motion"):
        ground_truth("avatar", 0, 9, 32, "turn")


def test_evaluate_a_pose_model_reports_akd_per_body_part(tmp_path):
    pytest.importorskip("mediapipe")
    from eval.evaluate import evaluate

    ae, dit = _tiny(control="pose")
    ae.save_pretrained(tmp_path / "autoencoder")
    dit.save_pretrained(tmp_path / "generator")
    r = evaluate(str(tmp_path), ["aapt", "autoencoder"], clips=1, n_frames=21, window=20, features="",
                 revisit=False)
    assert r["control"] == "pose" and r["source"] == "avatar"
    for o in (r["floor"], *r["methods"].values()):
        assert set(o["akd_parts"]) == set(PARTS) and all(len(v) == 1 for v in o["akd_parts"].values())
        assert len(o["pck"]) == 1 and not (o["pck"][0] < 0 or o["pck"][0] > 1)     # nan: nobody in 32 px


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_makes_a_video_from_the_first_frame(method):
    pose = METHODS[method].warp                                 # moves frames by the coming poses
    ae, dit = _tiny("pose" if pose else "camera")
    clip = make_clip("avatar" if pose else "world", 7, 21, 32)
    ctl = Controls(landmarks=clip.landmarks) if pose else Controls(K=clip.K, w2c=clip.w2c)
    video = generate(ae, dit, method, clip.frames[0], ctl, 21, clip_latents=3)
    assert video.shape == (21, 32, 32, 3) and video.dtype == np.uint8
    assert np.array_equal(video[0], clip.frames[0])


def test_the_warped_loop_recycles_the_frames_shown_moved_to_the_coming_poses():
    """``aapt_warp`` is the app's loop with each recycled chunk the last frame shown moved per bone
    to the coming poses: the same first latent as ``aapt_reencode``, other frames after it; a camera
    model has no poses to move by."""
    ae, dit = _tiny("pose")
    clip = make_clip("avatar", 3, 21, 32)
    ctl = Controls(landmarks=clip.landmarks)
    loop = generate(ae, dit, "aapt_reencode", clip.frames[0], ctl, 21, seed=2)
    warped = generate(ae, dit, "aapt_warp", clip.frames[0], ctl, 21, seed=2)
    assert np.array_equal(loop[:5], warped[:5])                 # latent 1 recycles the first frame in both
    assert not np.array_equal(loop[5:], warped[5:])
    with pytest.raises(ValueError, match="pose model"):
        generate(*_tiny(), "aapt_warp", clip.frames[0], Controls(K=make_clip("world", 3, 21, 32).K,
                                                                w2c=make_clip("world", 3, 21, 32).w2c), 21)


def test_report_tables_plots_and_results_document_block(tmp_path):
    import json

    from eval.report import END, START, build, table, update_doc

    res = tmp_path / "runs"
    res.mkdir()
    m = {"steps": 1, "psnr_1s": 25.0, "ssim_1s": 0.8, "fvd": [10.0, 12.0], "drift_fvd": 1.2, "ms_per_latent": 20.0,
         "fps": 200.0, "rot_err": [1.0, 1.5], "trans_err": [0.3, 0.4], "drift_rot_err": 1.5}
    r = {"model": "world", "source": "world", "control": "camera", "clips": 2, "frames": 481, "window": 240,
         "windows": [[0, 240], [240, 480]], "methods": {"aapt": m, "distill": dict(m, drift_fvd=3.0)},
         "floor": {"rot_err": [0.9, 0.9], "trans_err": [0.2, 0.2]},
         "revisit": {"frame": 120, "ground_truth": 99.0, "aapt": 20.0, "distill": 15.0}}
    (res / "world-480.json").write_text(json.dumps(r))
    # a pose model's run without the FVD-lite network: PSNR per window and AKD with its floor
    a = {"steps": 1, "psnr_1s": 22.0, "ssim_1s": 0.7, "psnr": [21.0, 18.0], "ms_per_latent": 20.0, "fps": 200.0,
         "akd": [0.4, 0.5], "missing": [0.1, 0.2], "drift_akd": 1.25, "pck": [0.6, 0.5]}
    (res / "avatar-96.json").write_text(json.dumps({
        "model": "avatar", "source": "avatar", "control": "pose", "clips": 2, "frames": 97, "window": 48,
        "windows": [[0, 48], [48, 96]], "methods": {"aapt": a}, "floor": {"akd": [0.2, 0.2], "missing": [0.0, 0.0]}}))
    (res / "photo-480.json").write_text(json.dumps(dict(r, source="photo")))   # the world model on photo pans
    # a run with FVD-lite's bootstrap intervals, FD-infinity and content accuracy (eval/stats.py)
    ci = dict(m, fvd_ci=[[8.0, 13.0], [9.0, 16.0]], drift_fvd_ci=[0.71, 1.93], fvd_inf=[4.0, 9.0], drift_fvd_inf=2.25,
              content_acc=[0.9, 0.25], fvd_matched=[5.0, 20.0], drift_fvd_matched=4.0, drift_fvd_matched_ci=[1.5, 6.0])
    tf = dict(ci, drift_fvd=3.0, drift_fvd_vs_aapt_ci=[0.8, 4.1], drift_fvd_vs_aapt_2x=0.62, drift_fvd_matched=10.0,
              drift_fvd_matched_vs_aapt_ci=[1.1, 5.0], drift_fvd_matched_vs_aapt_2x=0.93)
    (res / "world-481.json").write_text(json.dumps(dict(r, methods={"aapt": ci, "adversarial_tf": tf},
                                                        floor=dict(r["floor"], content_acc=[1.0, 0.95]))))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "world-7200.md").write_text("### world-7200: an earlier session's section\n")
    text = build(res, tmp_path / "docs")
    assert "an earlier session's section" in text                  # kept: its run folder is gone
    assert text.index("### avatar-96") < text.index("### world-480") < text.index("### world-7200")
    assert json.loads((tmp_path / "docs" / "world-480.json").read_text()) == r   # the record beside it
    assert build(tmp_path / "empty", tmp_path / "docs") == text    # nothing new: the same report
    assert "### photo-480: world model on photo clips" in text and "### world-480: world model," in text
    assert "**AAPT**" in text and "| 10.0 → 12.0 | 3.00 |" in text and "ground truth (estimator floor)" in text
    assert "ground truth (MediaPipe floor)" in text and "0.450" in text and "1.17" in text
    assert "| 1.39 |" in text and "| 2.25 |" in text          # RotErr 1.25 / floor 0.9, AKD 0.45 / floor 0.2
    assert "PCK@0.5" in text and "| 55 % |" in text           # the floor's run had none: a dash
    assert "| 10.0 → 12.0 | 1.20 [0.71, 1.93] | 5.0 → 20.0 | 4.00 [1.50, 6.00] | 4.0 → 9.0 | 90 / 25 % |" in text
    assert "| – | – | 100 / 95 % | 0.90 | 1.00 |" in text          # the truth's own content accuracy
    assert "adversarial_tf 2.50 [0.80, 4.10], 62 %." in text       # its drift over AAPT's, paired
    assert "adversarial_tf 2.50 [1.10, 5.00], 93 %." in text       # the same for same-window FVD-lite
    assert (tmp_path / "docs" / "world-481-drift.png").is_file()
    # one window (5 s): FVD-lite with its interval, no drift columns
    one = dict(ci, fvd=[3.9], fvd_ci=[[2.6, 12.8]], fvd_inf=[1.5], content_acc=[0.36], fvd_matched=[3.9])
    five = table(dict(r, windows=[[0, 120]], methods={"aapt": one}, floor=dict(r["floor"], content_acc=[0.48])))
    assert "| FVD-lite [90 % interval] | FD∞ | content kept |" in five and "| 3.90 [2.60, 12.80] | 1.5 | 36 % |" in five
    assert "| – | – | – | – | – | – | – | 48 % | 0.90 |" in five
    # with content per kind: a cities column (the kind the feature net reads best)
    kinds = dict(one, content_by_kind={"city": [0.57], "hills": [0.38]})
    five_k = table(dict(r, windows=[[0, 120]], methods={"aapt": kinds},
                        floor=dict(r["floor"], content_acc=[0.48], content_by_kind={"city": [0.86]})))
    assert "| content kept | cities kept |" in five_k and "| 36 % | 57 % |" in five_k
    assert "| 48 % | 86 % | 0.90 |" in five_k
    # with the seen-pixels column every row, the floor's too, has as many cells as the header
    seen = table(dict(r, windows=[[0, 120]], methods={"aapt": dict(kinds, psnr_1s_seen=30.9)},
                      floor=dict(r["floor"], content_acc=[0.48], content_by_kind={"city": [0.86]})))
    rows = [ln for ln in seen.splitlines() if ln.startswith("| ")]
    assert "PSNR 1 s, seen pixels" in rows[0] and len({ln.count(" | ") for ln in rows}) == 1, rows
    assert (tmp_path / "docs" / "world-480-drift.png").is_file()
    assert (tmp_path / "docs" / "avatar-96-drift.png").is_file()
    readme = tmp_path / "README.md"
    readme.write_text(f"# X\n\n{START}\nold\n{END}\n\nafter\n")
    update_doc(readme, text)
    s = readme.read_text()
    assert "old" not in s and "after" in s and s.count(START) == 1 and "**AAPT**" in s


def test_akd_reads_a_rendered_avatar_and_not_a_frozen_one():
    """MediaPipe on the ground-truth render follows the driving landmarks (the floor, a fraction
    of a torso length); the first frame held still does not follow them."""
    pytest.importorskip("mediapipe")
    clip = make_clip("avatar", split_seed("test", 2), 49, 128)
    gt = pose_errors(clip.frames, clip.landmarks)
    frozen = pose_errors(np.repeat(clip.frames[:1], len(clip.frames), 0), clip.landmarks)
    assert gt["frames"] >= 40 and gt["missing"] < 0.2
    assert gt["akd"] < 0.35
    assert frozen["akd"] > 1.5 * gt["akd"]
    # the per-part breakdown covers the same frames: the parts' errors average around the AKD,
    # and the frozen frame misses the moving arms most
    assert set(gt["parts"]) == set(PARTS)
    assert min(gt["parts"].values()) < gt["akd"] < max(gt["parts"].values())
    assert frozen["parts"]["wrists"] > frozen["parts"]["shoulders"]
    # PCK counts every keypoint of every frame: high on the render, lower held still, and 0 on a
    # video where nobody is found (whose AKD is undefined, not good)
    blank = pose_errors(np.full_like(clip.frames, 128), clip.landmarks)
    assert gt["pck"] > 0.8 and frozen["pck"] < gt["pck"]
    assert blank["missing"] == 1.0 and np.isnan(blank["akd"]) and blank["pck"] == 0.0
    assert blank["keypoints"] == gt["keypoints"] >= 4 * gt["frames"]      # the visible body landmarks
    assert pooled_pck([gt, blank]) == pytest.approx(gt["pck"] / 2)


def test_report_strips_the_first_clip_and_any_further_clips(tmp_path):
    import json

    from PIL import Image

    from data.video import read_video, write_mp4
    from eval.report import build

    res, out = tmp_path / "runs", tmp_path / "docs"
    m = {"steps": 1, "psnr_1s": 25.0, "ssim_1s": 0.8, "psnr": [20.0], "ms_per_latent": 20.0, "fps": 200.0,
         "akd": [0.4], "missing": [0.1], "drift_akd": 1.0, "pck": [0.6]}
    res.mkdir()
    (res / "avatar-24.json").write_text(json.dumps({
        "model": "avatar", "source": "avatar", "control": "pose", "clips": 2, "frames": 25, "window": 24,
        "windows": [[0, 24]], "methods": {"aapt": m}, "floor": {"akd": [0.2], "missing": [0.0]}}))
    rng = np.random.default_rng(0)
    for d in (res / "avatar-24", res / "avatar-24" / "clip5"):
        for name in ("ground_truth", "aapt"):
            write_mp4(d / f"{name}.mp4", rng.integers(0, 255, (25, 16, 16, 3), dtype=np.uint8))
    text = build(res, out)
    first, more = out / "avatar-24-strip.png", out / "avatar-24-clip5-strip.png"
    assert "](results/avatar-24-strip.png)" in text and "](results/avatar-24-clip5-strip.png)" in text
    assert "Strip of test clip 5: rows: ground_truth, aapt\nframes: 0, 12, 24" in text
    assert text.index("avatar-24-strip.png") < text.index("avatar-24-clip5-strip.png")
    h = read_video(res / "avatar-24" / "aapt.mp4").shape[1]
    assert np.asarray(Image.open(first)).shape[0] == np.asarray(Image.open(more)).shape[0] == 2 * h + 2
