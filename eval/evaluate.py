"""Every method against ground truth rendered from the same seeds and controls (``python -m eval``).

For each held-out test seed (never seen in training), the ground-truth clip is rendered with
its trajectory; every method generates from the true first frame under the true controls. Per
method: PSNR / SSIM over the first second (frames 1-24), FVD-lite per window of ``--window``
frames against the ground truth's windows, RotErr / TransErr (camera models) or AKD and PCK (pose
models, eval/pose.py) per window with the floor of the same estimator on the ground truth, drift (last
window / first window), revisit consistency after a full 360-degree yaw (camera models) and
the time per latent frame. What a viewer sees, per window (eval/metrics.py): ``detail`` (fine
detail kept, the Laplacian variance over the truth's: about 1 is sharp, 0.1 soft, above 1.3
artifacts), ``pulse`` (frame change across latent boundaries over inside them: 1 is smooth) and
``mosaic`` (power at the 16-px patch grid over the truth's: 1 is none); the truth's own pulse and
grid peak are in ``floor``. The row ``autoencoder`` scores the ground truth encoded and decoded by
the model's autoencoder: the bound of every generator that decodes its latents. The no-network rows
``repeat`` (the first frame held), ``warp`` (the first frame warped in pixels by the commanded
rotation, edges replicated; for pose models per bone by the commanded pose, controls/bone_warp.py)
and ``warp_recoded`` (that warp encoded and decoded) sit beside them; for camera models
``psnr_1s_seen`` scores the first second on the pixels that were in view in frame 0 alone. Beside each
FVD-lite figure (eval/stats.py): its 90 % bootstrap interval over the clips, the drift's interval,
FD-infinity (the few-clip bias extrapolated away) and the share of windows whose content (world
kind, avatar) the feature network still recognises.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from data.sources import make_clip, split_seed, world_clip_from_controls
from data.trajectories import user_trajectory
from controls.camera import reprojection_map
from data.video import write_mp4
from eval.baselines import pose_warp_baseline, warp_baseline
from eval.camera import camera_errors
from eval.features import VideoFeatureNet, window_features
from eval.metrics import VIEW_METRICS, detail_kept, grid_peak, mosaic, psnr_per_frame, pulse, ssim_per_frame
from eval.pose import pooled_akd, pooled_parts, pooled_pck, pose_errors
from eval.stats import add_fvd_stats, content_accuracy, content_accuracy_by_kind, content_label, save_features
from eval.rollout import METHODS, Controls, generate, load_method, reconstruct
from model.autoencoder import VideoAutoencoder
from model.engine import check_pair
from model.runtime import compute_dtype, precision_info
from model.warp import sample_points

ASSETS = Path(__file__).resolve().parent.parent / "assets"
RECON = "autoencoder"      # the ground truth through the autoencoder, beside the methods
# no network: the first frame held, warped by the commanded rotation (camera models) or per bone by the
# commanded pose (pose models, controls/bone_warp.py), or that warp through the autoencoder
BASELINES = ("repeat", "warp", "warp_recoded")


def seen_masks(K: np.ndarray, w2c: np.ndarray, size: int) -> np.ndarray:
    """(F, size, size) bool: the pixels of each frame that were in view in frame 0 (rotation
    and zoom, model/warp.py)."""
    maps = np.stack([reprojection_map(K[0], w2c[0], K[f], w2c[f], size, size) for f in range(len(K))])
    return sample_points(torch.from_numpy(maps), size, size)[1].numpy()


def baseline(name: str, gt: np.ndarray, ctl: Controls) -> np.ndarray:
    if name == "repeat":
        return np.repeat(gt[:1], len(gt), 0)
    if ctl.K is None:
        return pose_warp_baseline(gt, ctl.landmarks)
    return warp_baseline(gt, ctl.K, ctl.w2c)


def recoded(ae: VideoAutoencoder, video: np.ndarray, ctl: Controls, dtype: torch.dtype) -> np.ndarray:
    """A no-network video through the autoencoder (encoded and decoded), its first frame kept."""
    out = reconstruct(ae, video, dtype=dtype, maps=ctl.frame_maps(video.shape[1], len(video), ae.config.frames_per_latent,
                                                                   ae.config.pose_warp))
    out[0] = video[0]
    return out


def ground_truth(source: str, index: int, n_frames: int, size: int, trajectory: str | None = None):
    """The test clip ``index`` of ``source`` rendered for ``n_frames`` (trajectories are
    prefix-consistent: a longer render starts with the shorter one); with ``trajectory``, the same
    world and start pose driven by that named user behaviour (data/trajectories.py USER_SCRIPTS)."""
    if trajectory is None:
        return make_clip(source, split_seed("test", index), n_frames, size)
    if source != "world":
        raise ValueError(f"--trajectory drives the world's camera; source {source!r} has its own motion")
    return world_clip_from_controls(split_seed("test", index), user_trajectory(trajectory, n_frames), size)


def revisit_controls(rate: float = 3.0) -> tuple[np.ndarray, int]:
    """(F, 7) controls of a full 360-degree yaw at ``rate`` degrees per frame (the camera neither
    moves nor tilts), and the frame at which the first view returns."""
    n_turn = int(round(360.0 / rate))
    n = 1 + 4 * ((n_turn + 8 + 3) // 4)
    c = np.zeros((n, 7), np.float32)
    c[1:n_turn + 1, 0] = rate
    return c, n_turn


def windows(n_frames: int, window: int) -> list[tuple[int, int]]:
    return [(a, min(a + window, n_frames)) for a in range(0, n_frames - 16 + 1, window)]


def evaluate(model_dir: str, methods: list[str], clips: int, n_frames: int, window: int, features: str,
             source: str | None = None, revisit: bool = True, seed: int = 0, videos: str | None = None,
             features_out: str | None = None, n_boot: int = 200, first_clip: int = 0,
             dtype: str = "auto", trajectory: str | None = None) -> dict:
    """All metrics of ``methods`` on ``clips`` test clips from test clip ``first_clip`` on; with
    ``videos``, the first clip's ground truth and every method's video are written there as MP4
    (the report's strips); with ``features_out``, every window's FVD-lite features go to that .npz
    (eval/stats.py reads it). Clip i always gets noise seed ``seed + i``, so two runs over
    consecutive clip ranges add up to one run over both (eval/merge.py). The rollouts compute in
    ``dtype`` (model/runtime.py; ``auto``: bf16 only on CPUs where it is native)."""
    dtype = compute_dtype(dtype)
    model_dir = Path(model_dir)
    ae = VideoAutoencoder.from_pretrained(model_dir / "autoencoder").eval()
    net = VideoFeatureNet.from_pretrained(features).eval() if features else None   # "" = no FVD-lite
    dits = {m: load_method(model_dir, m) for m in methods if m in METHODS}
    if not dits:
        raise ValueError(f"evaluate needs at least one of {list(METHODS)} beside {RECON!r}")
    for dit in dits.values():
        check_pair(ae, dit)
    control = next(iter(dits.values())).config.control
    size = next(iter(dits.values())).config.latent_size * ae.config.spatial_factor
    fpl = ae.config.frames_per_latent
    source = source or ("avatar" if control == "pose" else "world")
    wins = windows(n_frames, window)
    gt_feats = [[] for _ in wins]
    if control == "none" and any(m in BASELINES for m in methods):
        raise ValueError(f"the no-network rows {BASELINES} need a camera or a pose model")
    res = {m: {"psnr_1s": [], "psnr_1s_seen": [], "ssim_1s": [], "feats": [[] for _ in wins], "cam": [[] for _ in wins],
               "psnr": [[] for _ in wins], "detail": [[] for _ in wins], "pulse": [[] for _ in wins],
               "mosaic": [[] for _ in wins],
               "pose": [[] for _ in wins], "ms_per_latent": []} for m in methods}
    floor_view = {"pulse": [[] for _ in wins], "grid_peak": [[] for _ in wins]}
    floor_cam = [[] for _ in wins]
    floor_pose = [[] for _ in wins]
    labels = []                                   # the feature net's content class of each clip
    for i in range(first_clip, first_clip + clips):
        clip = ground_truth(source, i, n_frames, size, trajectory)
        gt = clip.frames
        if net is not None:
            labels.append(content_label(clip.meta, net.config.contents))
        ctl = Controls(K=clip.K, w2c=clip.w2c, landmarks=clip.landmarks)
        seen = seen_masks(clip.K[:25], clip.w2c[:25], size) if control == "camera" else None
        for w, (a, b) in enumerate(wins):
            floor_view["pulse"][w].append(pulse(gt[a:b], fpl))
            floor_view["grid_peak"][w].append(grid_peak(gt[a:b]))
            if net is not None:
                gt_feats[w].append(window_features(net, gt[a:b]))
            if control == "camera":
                floor_cam[w].append(camera_errors(gt[a:b], clip.K[a:b], clip.w2c[a:b]))
            elif control == "pose":
                floor_pose[w].append(pose_errors(gt[a:b], clip.landmarks[a:b]))
        if videos and i == first_clip:
            write_mp4(Path(videos) / "ground_truth.mp4", gt)
        for m in methods:
            t = time.perf_counter()
            if m == RECON:
                video = reconstruct(ae, gt, dtype=dtype, maps=ctl.frame_maps(size, n_frames, fpl, ae.config.pose_warp))
            elif m == "warp_recoded":
                video = recoded(ae, baseline("warp", gt, ctl), ctl, dtype)
            elif m in BASELINES:
                video = baseline(m, gt, ctl)
            else:
                video = generate(ae, dits[m], m, gt[0], ctl, n_frames, seed=seed + i, dtype=dtype)
            res[m]["ms_per_latent"].append((time.perf_counter() - t) * 1e3 / ((n_frames - 1) // 4))
            if videos and i == first_clip:
                write_mp4(Path(videos) / f"{m}.mp4", video)
            res[m]["psnr_1s"].append(float(psnr_per_frame(video[1:25], gt[1:25]).mean()))
            res[m]["ssim_1s"].append(float(ssim_per_frame(video[1:25], gt[1:25]).mean()))
            if seen is not None:
                res[m]["psnr_1s_seen"].append(float(np.nanmean(psnr_per_frame(video[1:25], gt[1:25], seen[1:25]))))
            for w, (a, b) in enumerate(wins):
                res[m]["psnr"][w].append(float(psnr_per_frame(video[max(a, 1):b], gt[max(a, 1):b]).mean()))
                res[m]["detail"][w].append(detail_kept(video[max(a, 1):b], gt[max(a, 1):b]))
                res[m]["pulse"][w].append(pulse(video[a:b], fpl))
                res[m]["mosaic"][w].append(mosaic(video[a:b], gt[a:b]))
                if net is not None:
                    res[m]["feats"][w].append(window_features(net, video[a:b]))
                if control == "camera":
                    res[m]["cam"][w].append(camera_errors(video[a:b], clip.K[a:b], clip.w2c[a:b]))
                elif control == "pose":
                    res[m]["pose"][w].append(pose_errors(video[a:b], clip.landmarks[a:b]))
    if features_out and net is not None:
        save_features(features_out, wins, labels, gt_feats, {m: res[m]["feats"] for m in methods})
    out = {"model": str(model_dir.name), "source": source, "trajectory": trajectory, "control": control, "clips": clips,
           "first_clip": first_clip, "frames": n_frames, "window": window, "windows": [list(w) for w in wins],
           "precision": precision_info(dtype), "methods": {}}
    out["floor"] = {k: [float(np.nanmean(v)) for v in vs] for k, vs in floor_view.items()}
    if control == "camera":
        out["floor"] |= {"rot_err": _window_means(floor_cam, "rot_err"), "trans_err": _window_means(floor_cam, "trans_err")}
        out["floor_per_clip"] = {k: _per_clip(floor_cam, k) for k in ("rot_err", "trans_err")}
        out["floor_per_clip"] |= floor_view
    elif control == "pose":
        out["floor"] |= {"akd": [pooled_akd(ps) for ps in floor_pose], "pck": [pooled_pck(ps) for ps in floor_pose],
                        "missing": _window_means(floor_pose, "missing"), "akd_parts": pooled_parts(floor_pose)}
    if net is not None:           # how often the feature net names the true content on the truth itself
        out.setdefault("floor", {})["content_acc"] = content_accuracy(net, gt_feats, labels)
        out["floor"]["content_by_kind"] = content_accuracy_by_kind(net, gt_feats, labels)
    for m in methods:
        r = res[m]
        pc = {k: r[k] for k in ("psnr_1s", "ssim_1s", "psnr", *VIEW_METRICS, "ms_per_latent")}
        if control == "camera":
            pc["psnr_1s_seen"] = r["psnr_1s_seen"]
        if control == "camera":
            pc.update(rot_err=_per_clip(r["cam"], "rot_err"), trans_err=_per_clip(r["cam"], "trans_err"))
        o = summary(pc, METHODS[m].steps if m in METHODS else None)
        if control == "camera":
            o["per_clip"] = pc        # every clip's own scores, so that runs over more clips merge exactly
        if net is not None:
            o["content_acc"] = content_accuracy(net, r["feats"], labels)
            o["content_by_kind"] = content_accuracy_by_kind(net, r["feats"], labels)
        if control == "pose":
            o["akd"] = [pooled_akd(ps) for ps in r["pose"]]
            o["missing"] = _window_means(r["pose"], "missing")
            o["akd_parts"] = pooled_parts(r["pose"])
            o["pck"] = [pooled_pck(ps) for ps in r["pose"]]
            o["drift_akd"] = o["akd"][-1] / max(o["akd"][0], 1e-9)
        out["methods"][m] = o
    if net is not None:           # FVD-lite against every ground-truth window, with its intervals
        add_fvd_stats(out["methods"], {m: res[m]["feats"] for m in methods}, gt_feats, n_boot=n_boot, seed=seed)
    if revisit and control == "camera":
        out["revisit"] = revisit_scores(ae, dits, size, range(first_clip, first_clip + clips), seed, dtype)
    return out


def summary(pc: dict, steps: int | None) -> dict:
    """A method's figures from its per-clip scores: means over the clips of PSNR / SSIM over the
    first second and of PSNR per window, the median time per latent frame, and with camera
    errors (window x clip) their nan-aware means per window and RotErr's drift."""
    ms = float(np.median(pc["ms_per_latent"]))
    o = {"psnr_1s": float(np.mean(pc["psnr_1s"])), "ssim_1s": float(np.mean(pc["ssim_1s"])),
         "psnr": [float(np.mean(p)) for p in pc["psnr"]], "ms_per_latent": ms, "fps": 4000.0 / ms, "steps": steps}
    if pc.get("psnr_1s_seen"):
        o["psnr_1s_seen"] = float(np.mean(pc["psnr_1s_seen"]))
    for k in VIEW_METRICS:                          # per window, nan-aware (a still window has no pulse)
        if k in pc:
            o[k] = [float(np.nanmean(v)) if np.isfinite(np.asarray(v, float)).any() else float("nan") for v in pc[k]]
    if "rot_err" in pc:
        o["rot_err"] = [float(np.nanmean(v)) for v in pc["rot_err"]]
        o["trans_err"] = [float(np.nanmean(v)) for v in pc["trans_err"]]
        o["drift_rot_err"] = o["rot_err"][-1] / max(o["rot_err"][0], 1e-9)
    return o


def _window_means(per_window: list[list[dict]], key: str) -> list[float]:
    """Per window, the mean of ``key`` over the clips' scores (nan-aware)."""
    return [float(np.nanmean([c[key] for c in cs])) for cs in per_window]


def _per_clip(per_window: list[list[dict]], key: str) -> list[list[float]]:
    """(window, clip) values of ``key``."""
    return [[float(c[key]) for c in cs] for cs in per_window]


def revisit_scores(ae, dits: dict, size: int, clips: range, seed: int, dtype: torch.dtype) -> dict:
    """PSNR of the view after a full 360-degree yaw against the first view, from each test
    world's start pose. The renderer returns exactly (the ground-truth row shows it); a method
    must remember the view through its always-attended first frame."""
    controls, back = revisit_controls()
    out = {m: [] for m in dits}
    gt_scores = []
    for i in clips:
        clip = world_clip_from_controls(split_seed("test", i), controls, size)
        gt_scores.append(float(psnr_per_frame(clip.frames[back:back + 1], clip.frames[:1])[0]))
        ctl = Controls(K=clip.K, w2c=clip.w2c)
        for m, dit in dits.items():
            video = generate(ae, dit, m, clip.frames[0], ctl, clip.num_frames, seed=seed + i, dtype=dtype)
            out[m].append(float(psnr_per_frame(video[back:back + 1], video[:1])[0]))
    return {"frame": back, "ground_truth": float(np.mean(gt_scores)), **{m: float(np.mean(v)) for m, v in out.items()},
            "per_clip": {"ground_truth": gt_scores, **out}}
