"""Piecewise per-bone warps: where each pixel of a coming frame was in the last frame, from the pose.

    points = bone_warp_points(src, dst, size)   # src, dst (N, 33, >=2) landmarks -> (N, size, size, 2)

A pose model's reference decoder (model/autoencoder.py) copies from the last frame shown. When the
body moves, the last frame is moved first, part by part, to the commanded pose of each coming frame,
as camera models move it by the camera's homography (controls/camera.py, model/warp.py).

The body is cut into rigid parts (``PARTS``): the head and the torso, each moved by the similarity
that fits its landmarks best (least squares), and the limb segments (upper arm, forearm, hand,
thigh, shin, foot), each moved by its bone: its start joint lands exactly on its new place and
its end joint too, as long as the bone's length changes by less than ``max_stretch``
(foreshortening); positions along the bone stretch with it and positions across it keep their
distance (a limb does not get thinner when it points at the camera). A pixel of the
coming frame takes the parts' moves in proportion to how close it is to each part's axis in the new
pose (``sharpness``), so joints bend smoothly; pixels away from the body (the room, which a webcam
films still) stay where they are.

The parts' widths are fractions of the torso's length (``WarpConfig``), checked against the avatar
renderer's person masks (data/avatar.py; docs/training.md, "The avatar's reference warped per bone"). A pixel of the room that the body covered
in the last frame and uncovers now has nothing to copy: its point is set outside the image, so
model/warp.py's in-view mask marks it invalid, as it marks what a turning camera newly sees.

Points are normalised coordinates for ``grid_sample(align_corners=False)`` (x, y in [-1, 1] at the
image edges), as model/warp.py's homographies produce them; landmarks are in [0, 1] (controls/pose.py).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from controls.landmarks import INDEX

OUTSIDE = 4.0      # a point that has no source: outside the image, so not in view (model/warp.py)

_FACE = tuple(range(11))                                   # nose, eyes, ears, mouth
_TORSO = tuple(INDEX[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))


def _limbs(side: str) -> tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]:
    """(kind, start landmarks, end landmarks) of one side's limb segments; an end of several
    landmarks is their mean (the hand's knuckles)."""
    i = {n: INDEX[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "pinky", "index", "hip", "knee",
                                           "ankle", "heel", "foot_index")}
    return (("upper_arm", (i["shoulder"],), (i["elbow"],)), ("forearm", (i["elbow"],), (i["wrist"],)),
            ("hand", (i["wrist"],), (i["pinky"], i["index"])), ("thigh", (i["hip"],), (i["knee"],)),
            ("shin", (i["knee"],), (i["ankle"],)), ("foot", (i["heel"],), (i["foot_index"],)))


LIMBS = _limbs("left") + _limbs("right")
PARTS = ("head", "torso", *(f"{k}_{s}" for s in ("left", "right") for k, _, _ in _limbs(s)))


@dataclass(frozen=True)
class WarpConfig:
    # half-widths (the distance from a part's axis to its surface), in torso lengths (shoulder centre
    # to hip centre); the torso's is at least half its shoulder or hip width
    head: float = 0.42
    torso: float = 0.32
    upper_arm: float = 0.16
    forearm: float = 0.14
    hand: float = 0.14
    thigh: float = 0.2
    shin: float = 0.16
    foot: float = 0.12
    sharpness: float = 12.0     # the parts' blend weights: exp(-sharpness (distance / half-width)^2)
    grid: int = 32              # the moves are computed on this grid and interpolated (they are smooth)
    max_stretch: float = 2.0    # a limb's length change followed at most by this factor either way
    min_torso: float = 0.02     # a torso shorter than this (normalised) is taken as this long


def _similarity(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares 2D similarity taking dst points to src points: src (N, P, 2), dst (N, P, 2) ->
    (a, t) with x_src = a * x_dst + t in complex numbers: a (N,) complex, t (N,) complex."""
    s = torch.complex(src[..., 0], src[..., 1])
    d = torch.complex(dst[..., 0], dst[..., 1])
    sm, dm = s.mean(1, keepdim=True), d.mean(1, keepdim=True)
    dc, sc = d - dm, s - sm
    den = (dc.abs() ** 2).sum(1).clamp_min(1e-12)
    a = (dc.conj() * sc).sum(1) / den
    return a, sm[:, 0] - a * dm[:, 0]


@functools.lru_cache(maxsize=8)
def _grid(size: int, device: torch.device) -> torch.Tensor:
    """(size^2, 2) pixel centres in landmark coordinates [0, 1]."""
    c = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    gy, gx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(-1, 2)


def _endpoint_weights() -> tuple[torch.Tensor, torch.Tensor]:
    """(K, 33) weights making each part's axis ends from the landmarks (a mean where several)."""
    ends = [(_FACE, _FACE), (_TORSO[:2], _TORSO[2:])] + [(i, j) for _, i, j in LIMBS]
    wa, wb = torch.zeros(len(ends), 33), torch.zeros(len(ends), 33)
    for k, (i, j) in enumerate(ends):
        wa[k, list(i)] = 1.0 / len(i)
        wb[k, list(j)] = 1.0 / len(j)
    return wa, wb


_WA, _WB = _endpoint_weights()
_RADII = ("head", "torso", *(kind for kind, _, _ in LIMBS))


def _parts(lm: torch.Tensor, cfg: WarpConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each part's axis from ``a`` to ``b`` (N, K, 2) (the head is a point: a == b) and its
    half-width (N, K), for the K parts of ``PARTS``."""
    a, b = _WA.to(lm.device) @ lm, _WB.to(lm.device) @ lm
    torso_len = (a[:, 1] - b[:, 1]).norm(dim=-1).clamp_min(cfg.min_torso)
    width = torch.maximum((lm[:, _TORSO[0]] - lm[:, _TORSO[1]]).norm(dim=-1),
                          (lm[:, _TORSO[2]] - lm[:, _TORSO[3]]).norm(dim=-1))
    r = torch.tensor([getattr(cfg, k) for k in _RADII], device=lm.device)[None] * torso_len[:, None]
    r = torch.cat([r[:, :1], torch.maximum(r[:, 1:2], 0.5 * width[:, None]), r[:, 2:]], 1)
    return a, b, r


def _distance(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance of pixels x (P, 2) to segments a-b (N, K, 2) -> (N, K, P), and the position along
    each segment (N, K, P) (0 at a, 1 at b, unclamped)."""
    ab = b - a
    L2 = (ab ** 2).sum(-1, keepdim=True).clamp_min(1e-12)                # (N, K, 1)
    ax = x[None, None] - a[:, :, None]                                   # (N, K, P, 2)
    u = (ax * ab[:, :, None]).sum(-1) / L2
    d = ax - u.clamp(0, 1)[..., None] * ab[:, :, None]
    return d.norm(dim=-1), u


def body_cover(lm: torch.Tensor, size: int, cfg: WarpConfig = WarpConfig()) -> torch.Tensor:
    """(N, 33, >=2) landmarks -> (N, size, size) bool: the pixels within some part's half-width."""
    a, b, r = _parts(lm[..., :2].float(), cfg)
    d, _ = _distance(_grid(size, lm.device), a, b)
    return (d / r[..., None]).amin(1).le(1.0).view(-1, size, size)


def _coarse_warp(src: torch.Tensor, dst: torch.Tensor, g: int, cfg: WarpConfig) -> torch.Tensor:
    """On a g x g grid: (N, 4, g, g) = the displacement to the source point (2, landmark units),
    the coming body's and the last body's distance to their surface (in half-widths, minus 1:
    inside where <= 0)."""
    x = _grid(g, dst.device)                                             # (P, 2)
    sa, sb, sr = _parts(src, cfg)
    da, db, dr = _parts(dst, cfg)
    dist, _ = _distance(x, da, db)                                       # (N, K, P)
    dist = dist / dr[..., None]
    # the limbs: the start joint onto its old place, along the bone stretched by the bone's change of
    # length (within ``max_stretch``: a bone that nearly vanishes in one frame would tear), across it
    # by the same distance
    e_dst, e_src = (db - da)[:, 2:], (sb - sa)[:, 2:]                    # (N, L, 2)
    L_dst, L_src = e_dst.norm(dim=-1, keepdim=True), e_src.norm(dim=-1, keepdim=True)
    t_src = e_src / L_src.clamp_min(1e-6)
    t_dst = torch.where(L_dst > 1e-4, e_dst / L_dst.clamp_min(1e-6), t_src)
    stretch = (L_src / L_dst.clamp_min(1e-6)).clamp(1 / cfg.max_stretch, cfg.max_stretch)
    n_dst = torch.stack([-t_dst[..., 1], t_dst[..., 0]], -1)
    n_src = torch.stack([-t_src[..., 1], t_src[..., 0]], -1)
    rel = x[None, None] - da[:, 2:, None]                                # (N, L, P, 2)
    along = (rel * t_dst[:, :, None]).sum(-1) * stretch                  # (N, L, P)
    across = (rel * n_dst[:, :, None]).sum(-1)
    limbs = sa[:, 2:, None] + along[..., None] * t_src[:, :, None] + across[..., None] * n_src[:, :, None]
    # the head and the torso: the best similarity of their landmarks
    xc = torch.complex(x[:, 0], x[:, 1])[None]
    rigid = []
    for idx in (_FACE, _TORSO):
        s, t = _similarity(src[:, list(idx)], dst[:, list(idx)])
        z = s[:, None] * xc + t[:, None]
        rigid.append(torch.stack([z.real, z.imag], -1))
    move = torch.cat([torch.stack(rigid, 1), limbs], 1)                  # (N, K, P, 2)
    w = torch.softmax(-cfg.sharpness * dist ** 2, 1)
    disp = (w[..., None] * move).sum(1) - x[None]                        # (N, P, 2)
    d_old, _ = _distance(x, sa, sb)
    inside_new = dist.amin(1) - 1.0
    inside_old = (d_old / sr[..., None]).amin(1) - 1.0
    out = torch.cat([disp, inside_new[..., None], inside_old[..., None]], -1)  # (N, P, 4)
    return out.view(-1, g, g, 4).permute(0, 3, 1, 2)


def bone_warp_points(src: torch.Tensor, dst: torch.Tensor, size: int, cfg: WarpConfig = WarpConfig()) -> torch.Tensor:
    """Landmarks of the last frame ``src`` and of a coming frame ``dst`` (N, 33, >=2), [0, 1] ->
    (N, size, size, 2): for each pixel of the coming frame, where to take it from in the last one
    (normalised, ``OUTSIDE`` where the body uncovered the room). The parts' moves and distances are
    smooth, so they are computed on a ``cfg.grid`` square grid and interpolated bilinearly: a step of
    the stream warps 4 frames in about a millisecond."""
    src, dst = src[..., :2].float(), dst[..., :2].float()
    coarse = _coarse_warp(src, dst, min(cfg.grid, size), cfg)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    fine = fine.permute(0, 2, 3, 1)                                      # (N, size, size, 4)
    x = _grid(size, dst.device).view(1, size, size, 2)
    body = fine[..., 2:3] <= 0
    out = (x + torch.where(body, fine[..., :2], torch.zeros_like(fine[..., :2]))) * 2 - 1
    uncovered = ~body & (fine[..., 3:4] <= 0)
    return torch.where(uncovered, torch.full_like(out, OUTSIDE), out)


def identity_points(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(size, size, 2): every pixel taken from where it is (a still body)."""
    return (_grid(size, torch.device(device)) * 2 - 1).view(size, size, 2)


def chunk_points(last: torch.Tensor, coming: torch.Tensor, size: int, cfg: WarpConfig = WarpConfig()) -> torch.Tensor:
    """The warps of n coming frames from one last frame: last (N, 33, >=2), coming (N, n, 33, >=2)
    landmarks -> (N, n, size, size, 2)."""
    N, n = coming.shape[:2]
    src = last[:, None, :, :2].expand(-1, n, -1, -1).reshape(N * n, -1, 2)
    return bone_warp_points(src, coming[..., :2].reshape(N * n, -1, 2), size, cfg).view(N, n, size, size, 2)


def clip_pose_points(landmarks: np.ndarray, size: int, fpl: int = 4, cfg: WarpConfig = WarpConfig()) -> np.ndarray:
    """(1 + fpl k, 33, >=2) landmarks of a clip -> (k, fpl, size, size, 2) float32: every frame of
    latent j + 1 warped from the last frame of latent j (what a pose model's reference decoder
    copies from, as controls.camera.clip_frame_maps for cameras)."""
    lm = torch.from_numpy(np.asarray(landmarks, np.float32))
    k = (lm.shape[0] - 1) // fpl
    return chunk_points(lm[0:fpl * k:fpl], lm[1:1 + fpl * k].unflatten(0, (k, fpl)), size, cfg).numpy()
