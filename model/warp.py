"""Warps of frames and latents, with the mask of what was in view.

A warp is a homography or a point field. A map (3, 3) takes normalised destination coordinates to normalised source coordinates (x, y in
[-1, 1] at the image edges, pixel centres at i + 0.5: ``grid_sample(align_corners=False)``), as
``controls.camera.reprojection_map`` makes them. It is resolution-free, so one map warps a 128 px
frame and its 16 px latent alike. A point field (H, W, 2) gives each pixel's source point directly in
the same coordinates, as controls/bone_warp.py makes them for a moving body; a point outside [-1, 1]
is not in view.

- ``reproject_latents``: the DiT's recycled latent moved to the commanded camera (edges replicated).
- ``warp_reference``: the last decoded frame moved to each coming frame's camera, and the mask of
  the pixels that were in its view (the reference the decoder copies from, model/autoencoder.py).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as Fn

IDENTITY = torch.eye(3)


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(hw, 3) homogeneous normalised pixel centres of an h x w image (made once per size: the
    stream warps every step)."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(h * w, 3)


def sample_points(maps: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """maps (N, 3, 3) -> source points (N, h, w, 2) for grid_sample and in_view (N, h, w) bool:
    the point lies in front of the source camera and inside its image."""
    src = torch.einsum("nij,pj->npi", maps.float(), _pixel_grid(h, w, maps.device))    # (N, hw, 3)
    zc = src[..., 2:]
    front = zc > 1e-6
    xy = src[..., :2] / torch.where(front, zc, torch.full_like(zc, 1e-6))
    xy = torch.where(front, xy, torch.full_like(xy, 4.0)).clamp(-4.0, 4.0)
    in_view = front[..., 0] & (xy.abs() <= 1.0).all(-1)
    return xy.view(-1, h, w, 2), in_view.view(-1, h, w)


def reproject_latents(z: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Warp latents by homographies: z (B, F, C, h, w), maps (B, F, 3, 3). Bilinear, edges
    replicated; a point behind the source camera takes the edge value too."""
    B, F, C, h, w = z.shape
    xy, _ = sample_points(maps.reshape(B * F, 3, 3), h, w)
    out = Fn.grid_sample(z.flatten(0, 1).float(), xy, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(B, F, C, h, w).to(z.dtype)


def is_point_field(maps: torch.Tensor) -> bool:
    """Whether a batch of warps holds point fields (..., H, W, 2) rather than homographies (..., 3, 3)."""
    return maps.shape[-1] == 2


def _field_points(points: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """points (N, H', W', 2) -> (N, h, w, 2) (resampled, nearest, where the sizes differ) and in_view."""
    if points.shape[1:3] != (h, w):
        points = Fn.interpolate(points.permute(0, 3, 1, 2).float(), size=(h, w), mode="nearest").permute(0, 2, 3, 1)
    xy = points.float()
    return xy, (xy.abs() <= 1.0).all(-1)


def warp_reference(frame: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The reference of the coming frames: frame (B, 3, H, W) in [-1, 1], maps (B, n, 3, 3) from
    each of the n coming frames to ``frame`` (or point fields (B, n, H, W, 2)) -> (B, n, 4, H, W):
    the warped RGB, zero outside the old view, and the mask (1 where the pixel was in view, else 0).
    Computed in fp32, bicubic (a stream warps every frame again: bilinear's half-pixel blur would
    add up within a second). One image per coming frame: grid_sample spreads its batch over the threads."""
    B, n = maps.shape[:2]
    H, W = frame.shape[-2:]
    if is_point_field(maps):
        xy, in_view = _field_points(maps.reshape(B * n, *maps.shape[2:]), H, W)
    else:
        xy, in_view = sample_points(maps.reshape(B * n, 3, 3), H, W)
    src = frame.float()[:, None].expand(-1, n, -1, -1, -1).reshape(B * n, 3, H, W)
    rgb = Fn.grid_sample(src, xy, mode="bicubic", padding_mode="border", align_corners=False).clamp(-1, 1)
    mask = in_view[:, None].float()
    return torch.cat([rgb * mask, mask], 1).view(B, n, 4, H, W)


def warp_filled(frame: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """``warp_reference`` without the mask: (B, n, 3, H, W), the frame warped to each coming frame,
    and where no pixel was in view (the room a body uncovered) the frame itself as it was."""
    ref = warp_reference(frame, maps)
    return torch.where(ref[:, :, 3:] > 0, ref[:, :, :3], frame.float()[:, None])


def crop_maps(maps: torch.Tensor, size: int, crop: int, y: torch.Tensor, x: torch.Tensor,
              flip: torch.Tensor) -> torch.Tensor:
    """Warps of a ``size`` frame -> the same warps on its ``crop`` square at (y, x), mirrored where
    ``flip``: maps (B, n, 3, 3) or point fields (B, n, size, size, 2); y, x (B,) pixel offsets;
    flip (B,) bool."""
    s = crop / size
    if is_point_field(maps):
        out = torch.stack([maps[b, :, int(y[b]):int(y[b]) + crop, int(x[b]):int(x[b]) + crop]
                           for b in range(maps.shape[0])])            # (B, n, crop, crop, 2)
        off = torch.stack([(2 * x.float() + crop) / size - 1, (2 * y.float() + crop) / size - 1], -1)
        out = (out - off[:, None, None, None]) / s
        mirrored = torch.stack([-out[..., 0], out[..., 1]], -1).flip(-2)
        return torch.where(flip.view(-1, 1, 1, 1, 1), mirrored, out).to(maps.dtype)
    A = torch.zeros(maps.shape[0], 3, 3, dtype=torch.float64)        # crop-normalised -> frame-normalised
    A[:, 0, 0] = s * torch.where(flip, -1.0, 1.0).double()
    A[:, 1, 1] = s
    A[:, 0, 2] = (2 * x.double() + crop) / size - 1
    A[:, 1, 2] = (2 * y.double() + crop) / size - 1
    A[:, 2, 2] = 1
    out = torch.linalg.inv(A)[:, None] @ maps.double() @ A[:, None]
    return (out / out[..., 2:, 2:]).to(maps.dtype)


def shift_reference(ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Move a warped reference (B, n, 4, H, W) further by a flow (B, n, 2, h, w) in pixels of the
    reference (x, y; upsampled bilinearly where h, w differ from H, W, so a convolutional decoder
    means the same motion on a crop and on the whole frame): each pixel takes the reference at its
    own place plus the flow, bicubic, RGB and in-view mask alike (the mask is 0 where the flow
    reaches outside the frame). A zero flow returns ``ref``'s values exactly (pixel centres)."""
    B, n, C, H, W = ref.shape
    f = flow.flatten(0, 1).float()
    if f.shape[-2:] != (H, W):
        f = Fn.interpolate(f, size=(H, W), mode="bilinear", align_corners=False)
    to_norm = torch.tensor([2.0 / W, 2.0 / H], device=ref.device)
    xy = _pixel_grid(H, W, ref.device)[:, :2].view(1, H, W, 2) + f.permute(0, 2, 3, 1) * to_norm
    out = Fn.grid_sample(ref.flatten(0, 1).float(), xy, mode="bicubic", padding_mode="zeros", align_corners=False)
    rgb, mask = out[:, :3].clamp(-1.0, 1.0), out[:, 3:].clamp(0.0, 1.0)
    return torch.cat([rgb, mask], 1).view(B, n, C, H, W).to(ref.dtype)
