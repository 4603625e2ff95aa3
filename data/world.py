"""World explorer: procedural heightmap worlds ray-marched with true perspective (numba).

A world is a deterministic function of its seed: a periodic heightmap (so it never ends),
an albedo map with baked sun lighting and shadows, a sky with sun and clouds, fog and water.
A clip is a deterministic function of (world seed, camera start, control sequence): the same
``CameraRig`` as the app integrates the controls, so every frame comes with its exact
intrinsics and world-to-camera pose.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from controls.camera import CONTROL_DIM, CameraRig, CameraState, RigLimits
from data.clip import Clip

KINDS = ("hills", "mountains", "islands", "canyon", "city")
TIMES = ("dawn", "morning", "noon", "afternoon", "sunset")
N_MIPS = 5


# ----------------------------------------------------------------------------- noise
def spectral_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """Periodic (tileable) Gaussian noise with power spectrum ~ k^-beta, zero mean, unit std."""
    kx = np.fft.fftfreq(n)[:, None]
    ky = np.fft.fftfreq(n)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2.0)
    amp[0, 0] = 0.0
    spec = amp * (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    f = np.fft.ifft2(spec).real
    return ((f - f.mean()) / (f.std() + 1e-12)).astype(np.float32)


def _blur(h: np.ndarray) -> np.ndarray:
    """Periodic 3x3 binomial blur."""
    h = 0.25 * np.roll(h, 1, 0) + 0.5 * h + 0.25 * np.roll(h, -1, 0)
    return 0.25 * np.roll(h, 1, 1) + 0.5 * h + 0.25 * np.roll(h, -1, 1)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ----------------------------------------------------------------------------- world
@dataclass
class World:
    """Everything the ray-marcher needs; built once per seed by ``make_world``."""
    seed: int
    kind: str
    time_of_day: str
    height: np.ndarray        # (S, S) float32, max(terrain, water level): what the camera stands on
    terrain: np.ndarray       # (S, S) float32 terrain heights the rays march over
    slope: float              # bound on |grad terrain| used for safe ray steps
    max_step: float           # longest ray step (thin features: buildings)
    free: np.ndarray          # (S, S) bool: cells where a camera may start (land, street)
    mips: tuple               # N_MIPS arrays (S>>l, S>>l, 3) float32 lit colour, linear 0..1
    cell: float               # world units per heightmap cell
    water: float              # water level (-inf if none)
    water_color: np.ndarray   # (3,)
    sun: np.ndarray           # (3,) unit vector towards the sun
    sun_color: np.ndarray
    zenith: np.ndarray
    horizon: np.ndarray
    fog_density: float
    clouds: np.ndarray        # (C, C) float32 cloud density 0..1, periodic
    cloud_height: float
    cloud_color: np.ndarray

    @property
    def size(self) -> float:
        return self.height.shape[0] * self.cell

    def ground(self, x: float, y: float) -> float:
        return float(_sample_h(self.height, x / self.cell, y / self.cell))


_TIME_SKY = {  # sun elevation (deg), sun colour, zenith, horizon
    "dawn": (6.0, (1.0, 0.62, 0.42), (0.20, 0.28, 0.50), (0.95, 0.62, 0.50)),
    "morning": (25.0, (1.0, 0.90, 0.75), (0.25, 0.45, 0.80), (0.75, 0.82, 0.92)),
    "noon": (60.0, (1.0, 1.0, 0.95), (0.18, 0.38, 0.78), (0.70, 0.80, 0.95)),
    "afternoon": (35.0, (1.0, 0.93, 0.80), (0.22, 0.42, 0.78), (0.78, 0.82, 0.90)),
    "sunset": (4.0, (1.0, 0.50, 0.25), (0.15, 0.18, 0.40), (1.00, 0.55, 0.30)),
}


def _palette(rng: np.random.Generator, kind: str) -> dict:
    """Albedo palette of a world; jittered so that no two worlds look alike."""
    j = lambda c, s=0.06: np.clip(np.array(c) + rng.normal(0, s, 3), 0, 1)  # noqa: E731
    alien = rng.random() < 0.12
    p = {
        "sand": j((0.76, 0.70, 0.50)), "grass": j((0.30, 0.50, 0.18), 0.08),
        "grass2": j((0.45, 0.55, 0.22), 0.08), "rock": j((0.45, 0.42, 0.40)),
        "snow": j((0.95, 0.95, 0.97), 0.02), "dirt": j((0.45, 0.35, 0.25)),
        "water": j((0.10, 0.25, 0.35), 0.04),
    }
    if kind == "canyon":
        p.update(rock=j((0.70, 0.38, 0.22)), grass=j((0.60, 0.45, 0.30)), grass2=j((0.80, 0.55, 0.35)),
                 sand=j((0.85, 0.65, 0.45)))
    if rng.random() < 0.25:  # autumn / dry season
        p.update(grass=j((0.55, 0.45, 0.20)), grass2=j((0.65, 0.40, 0.15)))
    if alien:
        hue = rng.random(3)
        p.update(grass=hue * 0.7, grass2=np.roll(hue, 1) * 0.7)
    return p


def _heights(rng: np.random.Generator, kind: str, n: int) -> tuple[np.ndarray, float, float, np.ndarray]:
    """(terrain heights (n, n), water level or -inf, cell size, building ids (n, n), 0 = none)."""
    none = np.zeros((n, n), np.int32)
    if kind == "hills":
        h = spectral_noise(rng, n, 3.2) * rng.uniform(5, 9) + spectral_noise(rng, n, 2.0) * 0.4
        water = float(np.quantile(h, rng.uniform(0.0, 0.15))) if rng.random() < 0.6 else -np.inf
        return h, water, 1.0, none
    if kind == "mountains":
        base = spectral_noise(rng, n, 3.0)
        ridge = 1.0 - np.abs(spectral_noise(rng, n, 3.4))
        h = (0.5 * ridge ** 2 + 0.5 * base) * rng.uniform(10, 16)
        h = _blur(h) + spectral_noise(rng, n, 2.0) * 0.3
        water = float(np.quantile(h, 0.08)) if rng.random() < 0.4 else -np.inf
        return h, water, 1.0, none
    if kind == "islands":
        h = spectral_noise(rng, n, 3.4) * rng.uniform(6, 12) + spectral_noise(rng, n, 2.0) * 0.3
        return h, float(np.quantile(h, rng.uniform(0.35, 0.55))), 1.0, none
    if kind == "canyon":
        plateau = spectral_noise(rng, n, 3.5) * 3.0
        river = np.abs(spectral_noise(rng, n, 4.0))
        depth = rng.uniform(12, 20)
        h = plateau + depth * _smoothstep(0.08, 0.45, river)
        step = rng.uniform(2.0, 3.5)  # terraces
        frac = h / step - np.floor(h / step)
        h = (np.floor(h / step) + _smoothstep(0.3, 0.7, frac)) * step
        h += spectral_noise(rng, n, 2.0) * 0.3
        water = float(np.quantile(h, 0.05)) if rng.random() < 0.5 else -np.inf
        return h.astype(np.float32), water, 1.0, none
    if kind == "city":
        cell = 0.5
        block = int(rng.integers(24, 40))  # cells per block (incl. street)
        street = int(rng.integers(6, 10))
        h = spectral_noise(rng, n, 3.5) * 0.4
        ids = np.zeros((n, n), np.int32)
        nb = n // block
        for bi in range(nb):
            for bj in range(nb):
                x0, y0 = bi * block + street // 2, bj * block + street // 2
                size = block - street
                if rng.random() < 0.12:  # a park
                    continue
                k = int(rng.integers(1, 3))  # lots per side
                lot = size // k
                for a in range(k):
                    for b in range(k):
                        hb = rng.exponential(6.0) + 2.0
                        m = int(rng.integers(1, 3))
                        xs, ys = x0 + a * lot + m, y0 + b * lot + m
                        h[xs:xs + lot - 2 * m, ys:ys + lot - 2 * m] += min(hb, 30.0)
                        ids[xs:xs + lot - 2 * m, ys:ys + lot - 2 * m] = 1 + int(rng.integers(1 << 30))
        return h.astype(np.float32), -np.inf, cell, ids
    raise ValueError(f"unknown world kind {kind!r}; choose one of {KINDS}")


@numba.njit(cache=True, fastmath=True)
def _shadow_map(h: np.ndarray, sx: float, sy: float, sz: float, cell: float) -> np.ndarray:
    """1 where a cell sees the sun over the (periodic) heightmap, soft 0..1 otherwise."""
    n = h.shape[0]
    out = np.ones((n, n), dtype=np.float32)
    horiz = math.sqrt(sx * sx + sy * sy) + 1e-6
    slope = sz / horiz  # height gained per unit of horizontal distance towards the sun
    dx, dy = sx / horiz, sy / horiz
    for i in range(n):
        for j in range(n):
            h0 = h[i, j]
            vis = 1.0
            d = 1.0
            while d < 96.0:
                x = i + dx * d
                y = j + dy * d
                hh = _sample_h(h, x, y)
                gap = h0 + slope * d * cell + 0.3 - hh
                if gap < 0.0:
                    vis = 0.0
                    break
                vis = min(vis, gap / (0.05 * d * cell + 0.2))
                d += 1.0 + 0.05 * d
            out[i, j] = max(0.0, min(1.0, vis))
    return out


def make_world(seed: int, kind: str | None = None, time_of_day: str | None = None, n: int = 512) -> World:
    """Build the world of a seed (kind and time of day drawn from the seed unless given)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3017D]))
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    time_of_day = time_of_day or TIMES[int(rng.integers(len(TIMES)))]
    if kind not in KINDS:
        raise ValueError(f"unknown world kind {kind!r}; choose one of {KINDS}")
    if time_of_day not in _TIME_SKY:
        raise ValueError(f"unknown time of day {time_of_day!r}; choose one of {TIMES}")
    pal = _palette(rng, kind)
    h, water, cell, ids = _heights(rng, kind, n)
    elev, sun_col, zen, hor = _TIME_SKY[time_of_day]
    elev = math.radians(elev + rng.uniform(-3, 3))
    az = rng.uniform(0, 2 * math.pi)
    sun = np.array([math.sin(az) * math.cos(elev), math.cos(az) * math.cos(elev), math.sin(elev)])
    jitter = lambda c, s=0.04: np.clip(np.array(c) + rng.normal(0, s, 3), 0, 1)  # noqa: E731
    sun_col, zen, hor = jitter(sun_col, 0.02), jitter(zen), jitter(hor)

    # albedo from height, slope and noise
    gx = (np.roll(h, -1, 0) - np.roll(h, 1, 0)) / (2 * cell)
    gy = (np.roll(h, -1, 1) - np.roll(h, 1, 1)) / (2 * cell)
    normal = np.stack([-gx, -gy, np.ones_like(h)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    slope = 1.0 - normal[..., 2]
    lo, hi = np.quantile(h, 0.02), np.quantile(h, 0.98)
    hn = (h - lo) / (hi - lo + 1e-6)
    var = spectral_noise(rng, n, 1.5)[..., None]
    patch = _smoothstep(-0.5, 0.5, spectral_noise(rng, n, 2.5))[..., None]
    col = pal["grass"] * (1 - patch) + pal["grass2"] * patch
    col = np.where(_smoothstep(0.25, 0.55, slope)[..., None] > 0.5, pal["rock"], col)
    if kind == "mountains":
        snow = _smoothstep(0.7, 0.8, hn + 0.05 * var[..., 0])[..., None] * (slope < 0.5)[..., None]
        col = col * (1 - snow) + pal["snow"] * snow
    if np.isfinite(water):
        beach = _smoothstep(0.6, 0.0, (h - water))[..., None]
        col = col * (1 - beach) + pal["sand"] * beach
    if kind == "city":
        ground = ids == 0
        tint = rng.uniform(0.3, 0.85, (256, 3)).astype(np.float32)
        tint = 0.5 * tint + 0.5 * tint.mean(-1, keepdims=True)  # mostly greys and muted hues
        building = tint[ids % 256]
        street = np.full(3, 0.32) + rng.normal(0, 0.03, 3)
        parkish = (spectral_noise(rng, n, 3.0) > 0.3)[..., None]
        ground_col = np.where(parkish, pal["grass"], street)
        col = np.where(ground[..., None], ground_col, building)
    col = np.clip(col * (0.9 + 0.1 * var), 0, 1).astype(np.float32)

    # baked lighting: ambient sky + direct sun with cast shadows
    hm = np.maximum(h, water).astype(np.float32) if np.isfinite(water) else h.astype(np.float32)
    shadow = _shadow_map(hm, sun[0], sun[1], sun[2], cell)
    lambert = np.clip((normal * sun).sum(-1), 0, 1)
    ambient = 0.3 * (0.6 * zen + 0.4 * hor) + 0.12
    lit = col * (ambient + (lambert * shadow)[..., None] * sun_col * 0.75)
    lit = np.clip(lit, 0, 1).astype(np.float32)
    grad = np.sqrt(gx * gx + gy * gy)
    free = (h > water + 0.5) if np.isfinite(water) else np.ones_like(h, bool)
    if kind == "city":  # streets, away from walls
        b = ids > 0
        near = b.copy()
        for sh in range(1, 5):
            for ax in (0, 1):
                near |= np.roll(b, sh, ax) | np.roll(b, -sh, ax)
        free = ~near
    if not free.any():
        free = np.ones_like(h, bool)
    # a typical (not worst-case) slope: rare overshoots are caught by the bisection refinement
    slope_bound = float(max(0.25, 1.2 * np.quantile(grad, 0.9))) if kind != "city" else 1.0
    mips = [lit]
    for _ in range(N_MIPS - 1):
        a = mips[-1]
        mips.append((0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])).astype(np.float32))

    clouds = spectral_noise(rng, 256, 3.0)
    cover = rng.uniform(-0.3, 1.4)
    clouds = _smoothstep(cover, cover + 1.0, clouds).astype(np.float32) * rng.uniform(0.5, 0.95)
    cloud_color = np.clip(0.55 * sun_col + 0.45 * hor + 0.2, 0, 1)
    return World(
        seed=seed, kind=kind, time_of_day=time_of_day, height=np.ascontiguousarray(hm),
        terrain=np.ascontiguousarray(h.astype(np.float32)), slope=slope_bound,
        max_step=2.0 if kind == "city" else 8.0, free=free,
        mips=tuple(np.ascontiguousarray(m) for m in mips), cell=cell,
        water=float(water), water_color=pal["water"], sun=sun, sun_color=sun_col, zenith=zen,
        horizon=hor, fog_density=float(rng.uniform(0.006, 0.02)), clouds=clouds,
        cloud_height=float(rng.uniform(60, 120)), cloud_color=cloud_color,
    )


# ----------------------------------------------------------------------------- ray marching
@numba.njit(cache=True, fastmath=True, inline="always")
def _sample_h(h, x, y):
    n = h.shape[0]
    fx, fy = math.floor(x), math.floor(y)
    ax, ay = x - fx, y - fy
    m = n - 1
    i0, j0 = int(fx) & m, int(fy) & m
    i1, j1 = (i0 + 1) & m, (j0 + 1) & m
    return (h[i0, j0] * (1 - ax) + h[i1, j0] * ax) * (1 - ay) + (h[i0, j1] * (1 - ax) + h[i1, j1] * ax) * ay


@numba.njit(cache=True, fastmath=True, inline="always")
def _sample_c(c, x, y, k):
    n = c.shape[0]
    fx, fy = math.floor(x), math.floor(y)
    ax, ay = x - fx, y - fy
    m = n - 1
    i0, j0 = int(fx) & m, int(fy) & m
    i1, j1 = (i0 + 1) & m, (j0 + 1) & m
    return ((c[i0, j0, k] * (1 - ax) + c[i1, j0, k] * ax) * (1 - ay)
            + (c[i0, j1, k] * (1 - ax) + c[i1, j1, k] * ax) * ay)


@numba.njit(cache=True, fastmath=True)
def _sky(dx, dy, dz, px, py, sun, sun_col, zen, hor, clouds, cloud_h, cloud_col, out):
    e = max(dz, 0.0)
    w = 1.0 - math.exp(-4.0 * e)
    cs = max(0.0, dx * sun[0] + dy * sun[1] + dz * sun[2])
    glow = 0.25 * cs ** 8 + 0.6 * cs ** 256
    disk = 1.0 if cs > 0.9995 else 0.0
    cov = 0.0
    if dz > 0.02:
        s = cloud_h / dz
        u = (px + dx * s) * 0.35
        v = (py + dy * s) * 0.35
        cov = _sample_h(clouds, u, v) * min(1.0, (dz - 0.02) * 8.0)
    for k in range(3):
        base = hor[k] * (1.0 - w) + zen[k] * w + (glow + disk) * sun_col[k]
        out[k] = base * (1.0 - cov) + cloud_col[k] * cov


@numba.njit(cache=True, fastmath=True)
def _render(out, pos, R, fx, fy, cx, cy, h, hmax, slope, max_step, far, m0, m1, m2, m3, m4, cell,
            water, wcol, sun, sun_col, zen, hor, fog, clouds, cloud_h, cloud_col):
    H, W = out.shape[0], out.shape[1]
    px, py, pz = pos[0], pos[1], pos[2]
    inv_cell = 1.0 / cell
    col = np.empty(3)
    for r in range(H):
        for c in range(W):
            xc = (c + 0.5 - cx) / fx
            yc = (r + 0.5 - cy) / fy
            dx = R[0, 0] * xc + R[0, 1] * yc + R[0, 2]
            dy = R[1, 0] * xc + R[1, 1] * yc + R[1, 2]
            dz = R[2, 0] * xc + R[2, 1] * yc + R[2, 2]
            nrm = 1.0 / math.sqrt(dx * dx + dy * dy + dz * dz)
            dx *= nrm
            dy *= nrm
            dz *= nrm
            tmax = far
            if dz > 1e-4:
                tmax = min(far, (hmax - pz) / dz)
            t_water = 1e30
            if dz < -1e-6 and pz > water:
                t_water = (water - pz) / dz
                tmax = min(tmax, t_water)
            # safe step: the gap along the ray shrinks at most by (descent + slope * horizontal)
            rate = 1.0 / (max(-dz, 0.0) + slope * math.sqrt(max(1.0 - dz * dz, 0.0)) + 1e-3)
            hit = False
            t = 0.05
            prev_t = 0.0
            prev_gap = pz - _sample_h(h, px * inv_cell, py * inv_cell)
            thit = tmax
            for _ in range(200):
                if t > tmax:
                    t = tmax
                z = pz + t * dz
                gap = z - _sample_h(h, (px + t * dx) * inv_cell, (py + t * dy) * inv_cell)
                if gap < 0.0:
                    a, b, ga = prev_t, t, prev_gap
                    for _ in range(12):  # refine by bisection to a few mm (no banding on walls)
                        if b - a < 0.002 + 0.0005 * a:
                            break
                        m = 0.5 * (a + b)
                        gm = pz + m * dz - _sample_h(h, (px + m * dx) * inv_cell, (py + m * dy) * inv_cell)
                        if gm < 0.0:
                            b = m
                        else:
                            a, ga = m, gm
                    thit = a + (b - a) * 0.5
                    hit = True
                    break
                if t >= tmax:
                    break
                prev_t = t
                prev_gap = gap
                t += min(max(0.9 * gap * rate, 0.002 * t + 0.01), max_step + 0.02 * t)
            if not hit and t_water < 1e29 and t_water <= far:
                thit = t_water
                hit = True
            if not hit:
                _sky(dx, dy, dz, px, py, sun, sun_col, zen, hor, clouds, cloud_h, cloud_col, col)
            else:
                hx = (px + thit * dx) * inv_cell
                hy = (py + thit * dy) * inv_cell
                hz = pz + thit * dz
                if hz <= water + 1e-3:
                    # water: fresnel mix of the sky reflection and the water colour
                    fr = 0.03 + 0.97 * (1.0 - abs(dz)) ** 5
                    ripple = 0.04 * (_sample_h(clouds, hx * 2.0, hy * 2.0) - 0.5)
                    _sky(dx, dy, abs(dz) + ripple, px, py, sun, sun_col, zen, hor, clouds,
                         cloud_h, cloud_col, col)
                    sh = 0.55 + 0.45 * max(sun[2], 0.0)
                    for k in range(3):
                        col[k] = col[k] * fr + wcol[k] * sh * (1.0 - fr)
                else:
                    fp = thit / (fx * cell)  # texels per pixel: pick the mip level
                    lvl = 0
                    if fp > 1.0:
                        lvl = min(int(math.log2(fp) + 0.5), 4)
                    s = 1.0 / (1 << lvl)
                    for k in range(3):
                        if lvl == 0:
                            col[k] = _sample_c(m0, hx - 0.5, hy - 0.5, k)
                        elif lvl == 1:
                            col[k] = _sample_c(m1, hx * s - 0.5, hy * s - 0.5, k)
                        elif lvl == 2:
                            col[k] = _sample_c(m2, hx * s - 0.5, hy * s - 0.5, k)
                        elif lvl == 3:
                            col[k] = _sample_c(m3, hx * s - 0.5, hy * s - 0.5, k)
                        else:
                            col[k] = _sample_c(m4, hx * s - 0.5, hy * s - 0.5, k)
                f = math.exp(-fog * thit)
                for k in range(3):
                    col[k] = col[k] * f + hor[k] * (1.0 - f)
            for k in range(3):
                out[r, c, k] = np.uint8(min(255.0, max(col[k], 0.0) * 255.0 + 0.5))


def render_frame(world: World, K: np.ndarray, w2c: np.ndarray, width: int, height: int) -> np.ndarray:
    """One (H, W, 3) uint8 frame of ``world`` seen by a camera (K, w2c)."""
    R = np.ascontiguousarray(w2c[:3, :3].T, dtype=np.float64)
    pos = -R @ w2c[:3, 3]
    out = np.empty((height, width, 3), dtype=np.uint8)
    m = world.mips
    far = min(0.45 * world.size, 5.0 / world.fog_density)
    _render(out, pos, R, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
            world.terrain, float(world.terrain.max()) + 0.5, world.slope, world.max_step, far,
            m[0], m[1], m[2], m[3], m[4], world.cell,
            world.water, world.water_color, world.sun, world.sun_color, world.zenith, world.horizon,
            world.fog_density, world.clouds, world.cloud_height, world.cloud_color)
    return out


def _view_is_open(world: World, pos: np.ndarray, yaw: float, pitch: float, reach: float = 20.0) -> bool:
    """True if the camera's centre ray clears the ground for ``reach`` units."""
    psi, th = math.radians(yaw), math.radians(pitch)
    for d in np.linspace(1.0, reach, 12):
        x, y = pos[0] + d * math.sin(psi), pos[1] + d * math.cos(psi)
        if world.ground(x, y) > pos[2] + d * math.tan(th) - 0.5:
            return False
    return True


def start_state(world: World, rng: np.random.Generator, fov_x: float | None = None) -> CameraState:
    """A random camera start a few units above open ground with an unobstructed view."""
    cand = np.argwhere(world.free)
    fov = fov_x if fov_x is not None else float(rng.uniform(55, 75))
    best = None
    for _ in range(32):
        i, j = cand[int(rng.integers(len(cand)))]
        x, y = (i + rng.random()) * world.cell, (j + rng.random()) * world.cell
        pos = np.array([x, y, world.ground(x, y) + rng.uniform(1.5, 6.0)])
        yaw = float(rng.uniform(-180, 180))
        if world.kind == "city" and rng.random() < 0.7:  # look along a street
            yaw = float(90.0 * rng.integers(4) + rng.normal(0, 5))
        best = CameraState(position=pos, yaw=yaw, pitch=float(rng.uniform(-10, 5)), roll=0.0, fov_x=fov)
        if _view_is_open(world, pos, yaw, best.pitch):
            break
    return best


def rig_for(world: World, state: CameraState, width: int, height: int) -> CameraRig:
    limits = RigLimits(clearance=1.0, ceiling=float(world.height.max()) + 40.0, fov_min=40.0, fov_max=90.0,
                       max_climb=0.5 if world.kind == "city" else float("inf"))
    return CameraRig(width, height, state, limits, ground=world.ground)


def render_clip(world: World, state: CameraState, controls: np.ndarray, width: int = 128,
                height: int = 128) -> Clip:
    """Render len(controls) frames; controls[0] is ignored (frame 0 is the start pose)."""
    controls = np.asarray(controls, dtype=np.float32)
    assert controls.ndim == 2 and controls.shape[1] == CONTROL_DIM, controls.shape
    rig = rig_for(world, state, width, height)
    F = controls.shape[0]
    frames = np.empty((F, height, width, 3), np.uint8)
    Ks = np.empty((F, 3, 3), np.float32)
    w2cs = np.empty((F, 4, 4), np.float32)
    ctrl = controls.copy()
    ctrl[0] = 0.0
    for f in range(F):
        if f > 0:
            rig.step(ctrl[f])
        Ks[f], w2cs[f] = rig.K(), rig.w2c()
        frames[f] = render_frame(world, rig.K(), rig.w2c(), width, height)
    meta = {"source": "world", "seed": world.seed, "kind": world.kind, "time_of_day": world.time_of_day}
    return Clip(frames=frames, controls=ctrl, K=Ks, w2c=w2cs, meta=meta)
