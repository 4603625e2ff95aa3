"""Avatar studio: people made of round cones, driven by mocap, filmed like a webcam, with exact pose truth.

A clip is a deterministic function of (seed, n_frames, size): an ``Identity`` (body
proportions, skin, face, hair, clothes), a room (a real photo on the back wall, a textured
floor, a light), a webcam (height, distance, field of view, framing from head-and-shoulders
to full body) and a ``Performance`` (``data.avatar_motion``). Every frame is ray-cast (numba,
one core) from about 25 analytic primitives attached to the skeleton's bones; the same bones
give the 33 MediaPipe-format landmarks, and the depth buffer of the same pass gives their
visibility, so the landmarks line up with the rendered limbs by construction.

Landmarks follow ``mediapipe.solutions.pose``: x, y normalised image coordinates (x right,
y down), z the depth relative to the hip midpoint in the scale of x (smaller is nearer),
visibility the share of a 3x3 pixel neighbourhood where the point is in the image and not hidden
(by another body part, or by the far side of the body, as the far shoulder of a person seen
side-on). "Left" is the person's left. The exported pose is exact: webcam-like jitter lives in
the motion itself (tremor, sway), not as noise on the landmarks.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numba
import numpy as np

from controls.landmarks import NAMES as LANDMARK_NAMES  # noqa: F401 (the layout the renders are labelled in)
from controls.pose import NUM_LANDMARKS
from data.avatar_motion import (FPS, J, OFFSETS, STANDING_CONFIG, WRIST_OFFSET, PerformanceConfig, Skeleton, Stage,
                                forward_kinematics, performance)
from data.clip import Clip

FRAMINGS = ("head_shoulders", "upper_body", "half_body", "full_body")
# body parts (the ids in the id buffer; -1 is background)
PARTS = ("head", "hair", "neck", "torso", "pelvis", "right_upper_arm", "right_forearm", "right_hand",
         "left_upper_arm", "left_forearm", "left_hand", "right_thigh", "right_shin", "right_foot",
         "left_thigh", "left_shin", "left_foot")
PART_INDEX = {name: i for i, name in enumerate(PARTS)}
ROW = 40          # floats per primitive (layout in ``_rows``)
NEAR = 0.05       # metres: nothing nearer the camera is drawn

# ----------------------------------------------------------------------------- identities
SKIN_TONES = np.array([[0.97, 0.82, 0.72], [0.93, 0.75, 0.62], [0.86, 0.66, 0.52], [0.78, 0.58, 0.42],
                       [0.66, 0.47, 0.33], [0.52, 0.35, 0.24], [0.40, 0.26, 0.18], [0.28, 0.18, 0.13]])
HAIR_COLOURS = np.array([[0.05, 0.04, 0.04], [0.13, 0.08, 0.05], [0.26, 0.16, 0.09], [0.42, 0.29, 0.17],
                         [0.75, 0.60, 0.38], [0.50, 0.22, 0.10], [0.62, 0.60, 0.58]])
CLOTH_COLOURS = np.array([[0.92, 0.92, 0.90], [0.12, 0.12, 0.13], [0.45, 0.46, 0.48], [0.14, 0.18, 0.34],
                          [0.62, 0.12, 0.12], [0.20, 0.38, 0.66], [0.20, 0.40, 0.24], [0.80, 0.72, 0.56],
                          [0.85, 0.70, 0.20], [0.85, 0.55, 0.62], [0.40, 0.26, 0.16], [0.55, 0.25, 0.50],
                          [0.25, 0.55, 0.60], [0.90, 0.45, 0.20]])
DENIM = np.array([[0.18, 0.25, 0.40], [0.28, 0.36, 0.52], [0.10, 0.12, 0.18]])
EYE_COLOURS = np.array([[0.25, 0.15, 0.08], [0.12, 0.08, 0.05], [0.25, 0.40, 0.55], [0.30, 0.40, 0.25]])
HAIR_STYLES = {"female": ("short", "long", "long", "bun", "ponytail", "short"),
               "male": ("short", "short", "buzz", "bald", "short", "long")}
TOPS = ("tshirt", "tshirt", "longsleeve", "tank", "longsleeve")
# packaged photos dominated by a face (people, a cat, big cats): only ever hung as a small poster
FACE_PHOTOS = ("astronaut", "chelsea", "grace_hopper", "cheetah", "lion", "groot")
BOTTOMS = ("trousers", "trousers", "jeans", "jeans", "shorts")


@dataclass
class Identity:
    """One person's look; every length is a factor on the DeepMimic humanoid's."""
    height: float
    legs: float
    arms: float
    torso: float
    shoulders: float
    hips: float
    girth: float
    head: float
    female: float
    skin: tuple
    hair_style: str
    hair_colour: tuple
    eye_colour: tuple
    lip_colour: tuple
    top: str
    top_colour: tuple
    stripe_colour: tuple
    stripe_period: float     # metres, 0 = plain
    bottom: str
    bottom_colour: tuple
    shoe_colour: tuple
    sock_colour: tuple
    glasses: tuple | None    # frame colour, or None
    stubble: float           # 0..1 beard shadow

    def skeleton(self) -> Skeleton:
        """Bone offsets scaled by this body's proportions."""
        off = OFFSETS.copy() * self.height
        for j in ("right_knee", "right_ankle", "left_knee", "left_ankle"):
            off[J[j]] *= self.legs
        for j in ("right_elbow", "left_elbow"):
            off[J[j]] *= self.arms
        off[J["chest"]] *= self.torso
        off[J["neck"]] *= self.torso
        for j in ("right_shoulder", "left_shoulder"):
            off[J[j], 1] *= self.torso
            off[J[j], 2] *= self.shoulders
        for j in ("right_hip", "left_hip"):
            off[J[j], 2] *= self.hips
        return Skeleton(off, WRIST_OFFSET * self.height * self.arms)


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float = 0.04) -> tuple:
    c = palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0.02, 0.98))


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random person: proportions within the normal adult range, clothes from common colours."""
    female = float(rng.random() < 0.5)
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(t)
    skin = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[min(i + 1, len(SKIN_TONES) - 1)] * (t - i)
    style = str(rng.choice(HAIR_STYLES["female" if female else "male"]))
    hair = _pick(rng, HAIR_COLOURS, 0.03)
    top = str(rng.choice(TOPS))
    bottom = str(rng.choice(BOTTOMS + ("skirt", "skirt") if female else BOTTOMS))
    bottom_colour = _pick(rng, DENIM, 0.03) if bottom == "jeans" else _pick(rng, CLOTH_COLOURS)
    top_colour = _pick(rng, CLOTH_COLOURS)
    for _ in range(8):   # a top the colour of the skin reads as a bare chest
        if np.abs(np.array(top_colour) - skin).max() > 0.15:
            break
        top_colour = _pick(rng, CLOTH_COLOURS)
    return Identity(
        height=float(np.clip(rng.normal(1.06 - 0.05 * female, 0.045), 0.92, 1.2)),
        legs=float(rng.uniform(0.94, 1.06)), arms=float(rng.uniform(0.95, 1.05)),
        torso=float(rng.uniform(0.94, 1.06)),
        # the humanoid's shoulder joints sit wide: narrower ones give human shoulder breadths
        shoulders=float(rng.uniform(0.8, 0.92) - 0.04 * female), hips=float(rng.uniform(0.95, 1.08) + 0.06 * female),
        girth=float(np.clip(rng.lognormal(0.0, 0.12), 0.8, 1.45)), head=float(rng.uniform(0.95, 1.05)),
        female=female, skin=tuple(float(v) for v in skin), hair_style=style, hair_colour=hair,
        eye_colour=_pick(rng, EYE_COLOURS, 0.02),
        lip_colour=tuple(float(v) for v in np.clip(skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 0.03, 3)
                                                   + (np.array([0.1, -0.05, 0.0]) if female else 0.0), 0, 1)),
        top=top, top_colour=top_colour, stripe_colour=_pick(rng, CLOTH_COLOURS),
        stripe_period=float(rng.uniform(0.03, 0.09)) if rng.random() < 0.2 else 0.0,
        bottom=bottom, bottom_colour=bottom_colour, shoe_colour=_pick(rng, CLOTH_COLOURS[:4], 0.05),
        sock_colour=_pick(rng, CLOTH_COLOURS[:3], 0.02),
        glasses=_pick(rng, np.array([[0.05, 0.05, 0.05], [0.35, 0.2, 0.1], [0.6, 0.6, 0.62]]), 0.02)
        if rng.random() < 0.2 else None,
        stubble=float(rng.uniform(0.3, 1.0)) if not female and rng.random() < 0.25 else 0.0)


# ----------------------------------------------------------------------------- body model
MAT_SKIN, MAT_FACE, MAT_HAIR, MAT_TOP, MAT_UPPER_SLEEVE, MAT_LOWER_SLEEVE, MAT_PELVIS, MAT_THIGH, MAT_SHIN, \
    MAT_SOCK, MAT_SHOE = range(11)
KIND_CLOTH, KIND_SKIN, KIND_FACE, KIND_HAIR = range(4)

# The float arrays the ray caster (numba) reads, by name: each constant is the index of its value,
# or of the first of 3 for a name ending in _RGB, _DIR or _UP
# a row of ``Body.materials`` (``_material``)
MATERIAL_RGB_A = 0                  # colour A
MATERIAL_RGB_B = 3                  # colour B: past ``cut`` along the cone, or every other stripe
MATERIAL_CUT = 6                    # where B starts, as a share of the cone's length
MATERIAL_KIND = 7                   # KIND_*
MATERIAL_STRIPE = 8                 # stripe period across the bone (0: none)
MATERIAL_SPEC, MATERIAL_SHINE = 9, 10  # specular strength and exponent
MATERIAL_NECK_RGB = 11              # a round neckline: the skin showing above it,
MATERIAL_NECK_Y = 14                # its height in the bone frame (9: none)
MATERIAL_NECK_HALF_W = 15           # and its half width
MATERIAL_SIZE = 16
# ``Body.face``: the face painted on the head, head-centred metres (x forward, y up, z right)
FACE_EYE_Y, FACE_EYE_Z = 0, 1       # an eye's centre (z: from the midline, both sides)
FACE_EYE_HALF_H, FACE_EYE_HALF_W = 2, 3  # the eye's almond
FACE_IRIS, FACE_PUPIL = 4, 5        # radii
FACE_BROW_Y, FACE_BROW_H = 6, 7     # a brow's centre height and thickness
FACE_BROW_Z0, FACE_BROW_Z1 = 8, 9   # its inner and outer end
FACE_MOUTH_Y, FACE_MOUTH_HALF_W, FACE_MOUTH_HALF_H = 10, 11, 12
FACE_EYE_RGB, FACE_LIP_RGB = 13, 16  # iris, lips
FACE_BROW_RGB = 19                  # brows and beard shadow (darker than the hair)
FACE_HAIR_RGB = 22                  # the hair painted on the skull
FACE_HAIRLINE_FRONT, FACE_HAIRLINE_SIDE, FACE_HAIRLINE_BACK = 25, 26, 27  # its height there (9: bald)
FACE_HAIR_COVER = 28                # how much the painted hair hides the skin
FACE_GLASSES, FACE_GLASSES_RGB = 29, 30  # 1 with glasses; their frame's colour
FACE_STUBBLE = 33                   # 0..1 beard shadow
FACE_SIZE = 40
# the light of a clip, in camera coordinates
LIGHT_DIR = 0                       # towards the key light
LIGHT_RGB = 3                       # the key light's colour and strength
LIGHT_SKY_RGB, LIGHT_GROUND_RGB = 6, 9  # ambient from above and from below
LIGHT_UP = 12                       # the world's up
LIGHT_RIM = 15                      # rim light strength
LIGHT_SIZE = 16


@dataclass
class Body:
    """The primitives of one identity, each fixed in a bone's frame, and where its landmarks sit.

    Every primitive is a *round cone* (two spheres, radii r1 at the origin and r2 at (0, L, 0),
    and the cone tangent to both) in its own shape space, mapped into the bone's frame by
    ``origin + lin @ q``: L = 0 with r1 = 1 is an ellipsoid (lin = diag(radii)), r1 = r2 a
    capsule, and a squash in ``lin`` flattens a limb or the torso. Chained cones that share an
    end sphere join smoothly (limbs, the torso).
    """
    bone: np.ndarray        # (Pr,) int: joint whose frame carries the primitive
    part: np.ndarray        # (Pr,) int: index into PARTS
    material: np.ndarray    # (Pr,) int: row of ``materials``
    origin: np.ndarray      # (Pr, 3) shape-space origin in the bone frame
    lin: np.ndarray         # (Pr, 3, 3) shape space -> bone frame
    cone: np.ndarray        # (Pr, 3) L, r1, r2
    tex: np.ndarray         # (Pr, 3) texture origin in the bone frame (the joint, or the head's centre)
    clip: np.ndarray        # (Pr, 4) keep the surface where n . q >= c (q: shape space); n = 0: all of it
    materials: np.ndarray   # (M, MATERIAL_SIZE): colours, cut, kind, stripes, specular, neckline (the MAT_* layout)
    face: np.ndarray        # (FACE_SIZE,) eyes, brows, mouth, hairline, colours, glasses, beard (the FACE_* layout)
    lm_bone: np.ndarray     # (33,) int: joint frame of each landmark
    lm_local: np.ndarray    # (33, 3) landmark in its joint's frame
    lm_parts: np.ndarray    # (33,) int bit mask of the landmark's own parts (1 << part)
    lm_depth: np.ndarray    # (33,) how far its own parts may lie in front of it and still show it


def _material(a, b=None, cut=9.0, kind=KIND_CLOTH, stripe=0.0, spec=0.05, shine=8.0, neckline=None) -> np.ndarray:
    m = np.zeros(MATERIAL_SIZE)
    m[MATERIAL_RGB_A:MATERIAL_RGB_A + 3] = a
    m[MATERIAL_RGB_B:MATERIAL_RGB_B + 3] = a if b is None else b
    m[MATERIAL_CUT], m[MATERIAL_KIND], m[MATERIAL_STRIPE] = cut, kind, stripe
    m[MATERIAL_SPEC], m[MATERIAL_SHINE] = spec, shine
    m[MATERIAL_NECK_Y] = 9.0
    if neckline is not None:   # skin showing above a round neckline: (skin colour, height, half width)
        m[MATERIAL_NECK_RGB:MATERIAL_NECK_RGB + 3], m[MATERIAL_NECK_Y], m[MATERIAL_NECK_HALF_W] = neckline
    return m


class _Builder:
    """Collects primitives for ``Body``."""

    def __init__(self):
        self.rows: list[tuple] = []

    def _add(self, bone, part, mat, origin, lin, cone, tex, clip):
        self.rows.append((J[bone], PART_INDEX[part], mat, np.asarray(origin, float), lin, np.asarray(cone, float),
                          np.asarray(tex, float), np.asarray(clip, float)))

    def ellipsoid(self, bone, part, mat, centre, radii, tex=(0, 0, 0), clip=(0, 0, 0, 0)):
        self._add(bone, part, mat, centre, np.diag(np.asarray(radii, float)), (0.0, 1.0, 1.0), tex, clip)

    def cone(self, bone, part, mat, a, b, r1, r2, squash=1.0, hint=(1.0, 0.0, 0.0), tex=(0, 0, 0), stretch=1.0):
        """From a (radius r1) to b (radius r2) in the bone frame; ``squash`` scales the section
        along ``hint`` (made square to the axis), e.g. to make the torso shallower than wide;
        ``stretch`` scales the end spheres along the axis."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        L = float(np.linalg.norm(b - a))
        y = (b - a) / L
        x = np.asarray(hint, float) - np.dot(hint, y) * y
        if np.linalg.norm(x) < 1e-3:
            x = np.array([0.0, 1.0, 0.0]) - y[1] * y
        x /= np.linalg.norm(x)
        Q = np.stack([x, y, np.cross(x, y)], -1)
        self._add(bone, part, mat, a, Q @ np.diag([squash, stretch, 1.0]), (L / stretch, r1, r2), tex, (0, 0, 0, 0))

    def inside(self, bone: str, points: np.ndarray, parts: tuple[str, ...]) -> np.ndarray:
        """(N,) bool: which points (N, 3) of the bone frame lie inside a primitive of ``parts`` on that bone."""
        out = np.zeros(len(points), bool)
        for jb, part, _, origin, lin, (L, r1, r2), _, _ in self.rows:
            if jb != J[bone] or PARTS[part] not in parts:
                continue
            q = np.linalg.solve(lin, (points - origin).T).T                    # (N, 3) shape space
            t = np.linspace(0.0, L, 65)   # a round cone is the union of spheres along its axis
            d = np.hypot(np.hypot(q[:, :1], q[:, 2:]), q[:, 1:2] - t) - (r1 + (r2 - r1) * t / max(L, 1e-9))
            out |= d.min(1) <= 0
        return out

    def front(self, bone: str, y: float, z: float, parts: tuple[str, ...], x_max: float = 0.25) -> float:
        """x of the frontmost surface of ``parts`` at (y, z) of the bone frame (coarse to fine, 0.1 mm)."""
        hi, lo = x_max, -x_max
        for n in (81, 101):
            x = np.linspace(hi, lo, n)
            hit = self.inside(bone, np.stack([x, np.full_like(x, y), np.full_like(x, z)], -1), parts)
            if not hit.any():
                raise ValueError(f"no surface at y={y}, z={z}")
            i = int(np.argmax(hit))
            hi, lo = x[max(i - 1, 0)], x[i]
        return float(lo)


def make_body(idt: Identity, sk: Skeleton) -> Body:
    """Primitives and landmarks of a body with skeleton ``sk`` (from ``idt.skeleton()``)."""
    o = sk.offsets
    g, hs, s, fem = idt.girth, idt.head * idt.height, idt.height, idt.female
    L_up, L_fore = -o[J["right_elbow"], 1], -sk.wrist[1]
    L_th, L_sh = -o[J["right_knee"], 1], -o[J["right_ankle"], 1]
    sh_y, sh_z, hip_z = o[J["right_shoulder"], 1], o[J["right_shoulder"], 2], o[J["right_hip"], 2]
    chest_y = o[J["chest"], 1]
    skin = np.array(idt.skin)
    top, bottom = np.array(idt.top_colour), np.array(idt.bottom_colour)
    upper_cut = {"tshirt": 0.45, "longsleeve": 9.0, "tank": -9.0}[idt.top]
    thigh_cut = {"shorts": 0.6, "skirt": -9.0}.get(idt.bottom, 9.0)
    shorts = idt.bottom in ("shorts", "skirt")
    belt = np.array(idt.shoe_colour) * 0.6 if idt.bottom != "shorts" else bottom
    mats = np.stack([
        _material(skin, kind=KIND_SKIN, spec=0.12, shine=14.0),
        _material(skin, kind=KIND_FACE, spec=0.12, shine=14.0),
        _material(idt.hair_colour, kind=KIND_HAIR, spec=0.25, shine=20.0),
        _material(top, idt.stripe_colour, stripe=idt.stripe_period, neckline=(skin, sh_y - 0.012 * s, 0.06 * s)),
        _material(top, skin, cut=upper_cut),
        _material(top, skin, cut=0.97) if idt.top == "longsleeve" else _material(skin, kind=KIND_SKIN, spec=0.1),
        _material(bottom, belt, cut=0.9),
        _material(bottom, skin, cut=thigh_cut),
        _material(skin if shorts else bottom, kind=KIND_SKIN if shorts else KIND_CLOTH),
        _material(skin, idt.sock_colour, cut=0.35) if shorts else _material(bottom),
        _material(idt.shoe_colour, spec=0.2, shine=20.0)])
    B = _Builder()
    # torso: hips -> waist (root frame), waist -> chest -> shoulders (chest frame); wider than deep
    hips = (hip_z + 0.078) * g ** 0.6 * (1 + 0.04 * fem)
    waist = 0.125 * s * g ** 0.9 * (1 - 0.08 * fem)
    chest = (0.1 * s + 0.3 * sh_z) * g ** 0.6 * (1 - 0.05 * fem)
    if idt.bottom == "skirt":   # a flared skirt to above the knees, one panel swinging with each thigh
        for side in ("right", "left"):
            B.cone(f"{side}_hip", "pelvis", MAT_PELVIS, (0.0, 0.03 * s, 0.0), (0.012, -0.6 * L_th, 0.0), 0.105 * g,
                   0.135 * g, stretch=0.5)
    # flattened end spheres (``stretch`` < 1) keep the shoulders square and the chest from bulging;
    # the cones share squash and stretch, so their shared end spheres join without a crease
    depth = (0.68 + 0.05 * fem) * g ** 0.1
    B.cone("root", "pelvis", MAT_PELVIS, (0, 0.05 * s, 0), (0.0, chest_y, 0), 0.9 * hips, waist, squash=depth,
           stretch=0.55)
    B.cone("chest", "torso", MAT_TOP, (0, 0, 0), (0.005, 0.13 * s, 0), waist, chest, squash=depth, stretch=0.55)
    B.cone("chest", "torso", MAT_TOP, (0.005, 0.13 * s, 0), (-0.012, sh_y - 0.035 * s, 0), chest,
           sh_z + 0.03 * g ** 0.5, squash=depth, stretch=0.55)
    # neck and head (neck frame): the head is a round cone from the chin to the crown, deeper than
    # wide and stretched upwards; the face is painted on it round the head's centre ``hc``
    hc = np.array([0.012, 0.07 * s + 0.105 * hs, 0.0])
    nose_c, nose_r = hc + np.array([0.083, -0.024, 0.0]) * hs, np.array([0.015, 0.021, 0.012]) * hs
    B.cone("neck", "neck", MAT_SKIN, (0.0, -0.04 * s, 0.0), (0.012, hc[1] - 0.045 * hs, 0.0), 0.052 * g ** 0.4,
           0.046 * g ** 0.3, squash=0.95)
    B.cone("neck", "head", MAT_FACE, hc + np.array([0.03, -0.066, 0.0]) * hs, hc + np.array([-0.004, 0.016, 0.0]) * hs,
           0.047 * hs, 0.077 * hs, squash=1.27, stretch=1.22, tex=hc)
    B.ellipsoid("neck", "head", MAT_FACE, nose_c, nose_r, tex=hc)
    for z in (-1, 1):
        B.ellipsoid("neck", "head", MAT_SKIN, hc + np.array([-0.008, -0.008, z * 0.074]) * hs,
                    np.array([0.017, 0.029, 0.012]) * hs)
    style = idt.hair_style
    if style not in ("bald", "buzz", "short"):   # short hair is painted on the skull only
        # volume: a shell larger than the skull, kept above a line that rises towards the face
        B.ellipsoid("neck", "hair", MAT_HAIR, hc + np.array([-0.014, 0.016, 0.0]) * hs,
                    np.array([0.098, 0.113, 0.079]) * hs * 1.1, tex=hc, clip=(-0.55, 1.0, 0.0, -0.25))
    if style == "long":
        B.ellipsoid("neck", "hair", MAT_HAIR, hc + np.array([-0.052, -0.1, 0.0]) * hs,
                    np.array([0.07, 0.16, 0.105]) * hs, tex=hc, clip=(-1.0, 0.0, 0.0, -0.4))
    elif style == "bun":
        B.ellipsoid("neck", "hair", MAT_HAIR, hc + np.array([-0.095, 0.07, 0.0]) * hs, np.full(3, 0.042 * hs), tex=hc)
    elif style == "ponytail":
        B.cone("neck", "hair", MAT_HAIR, hc + np.array([-0.1, 0.03, 0.0]) * hs,
               hc + np.array([-0.135, -0.16, 0.0]) * hs, 0.032 * hs, 0.018 * hs, tex=hc)
    # arms (shoulder and elbow frames; the hand hangs on the elbow's frame past the wrist)
    hand = 0.95 * s
    for side in ("right", "left"):
        sh, el = f"{side}_shoulder", f"{side}_elbow"
        B.cone(sh, f"{side}_upper_arm", MAT_UPPER_SLEEVE, (0, 0, 0), (0, -L_up, 0), 0.046 * g, 0.036 * g ** 0.8)
        B.cone(el, f"{side}_forearm", MAT_LOWER_SLEEVE, (0, 0, 0), (0, -L_fore, 0), 0.036 * g ** 0.8, 0.025 * g ** 0.5,
               squash=0.85)
        # palm and fingers: flat (thin across z, wide along x), the thumb forward of them
        B.cone(el, f"{side}_hand", MAT_SKIN, (0.004, -L_fore - 0.015 * hand, 0), (0.006, -L_fore - 0.075 * hand, 0),
               0.016 * hand, 0.017 * hand, squash=2.5)
        B.cone(el, f"{side}_hand", MAT_SKIN, (0.006, -L_fore - 0.075 * hand, 0), (0.006, -L_fore - 0.14 * hand, 0),
               0.017 * hand, 0.012 * hand, squash=2.6)
        B.cone(el, f"{side}_hand", MAT_SKIN, (0.03 * hand, -L_fore - 0.025 * hand, 0.0),
               (0.056 * hand, -L_fore - 0.085 * hand, 0.0), 0.012 * hand, 0.009 * hand)
    # legs (hip and knee frames): thigh, calf, shin; shoes (ankle frame)
    for side in ("right", "left"):
        hip, kn, an = f"{side}_hip", f"{side}_knee", f"{side}_ankle"
        B.cone(hip, f"{side}_thigh", MAT_THIGH, (0, 0, 0), (0, -L_th, 0), 0.09 * g, 0.05 * g ** 0.7)
        B.cone(kn, f"{side}_shin", MAT_SHIN, (0, 0, 0), (-0.012, -0.32 * L_sh, 0), 0.05 * g ** 0.7, 0.054 * g ** 0.8)
        B.cone(kn, f"{side}_shin", MAT_SOCK, (-0.012, -0.32 * L_sh, 0), (0, -L_sh, 0), 0.054 * g ** 0.8,
               0.032 * g ** 0.5)
        B.cone(an, f"{side}_foot", MAT_SHOE, (-0.05 * s, -0.012 * s, 0), (0.15 * s, -0.02 * s, 0), 0.042 * s,
               0.038 * s, squash=0.8, hint=(0.0, 1.0, 0.0))
    # face layout, head-centred metres (x forward, y up, z right); hair painted above a hairline
    ey, ez = 0.004 * hs, 0.031 * hs
    face = np.zeros(FACE_SIZE)
    face[FACE_EYE_Y], face[FACE_EYE_Z] = ey, ez
    face[FACE_EYE_HALF_H], face[FACE_EYE_HALF_W] = 0.0068 * hs, 0.0122 * hs
    face[FACE_IRIS], face[FACE_PUPIL] = 0.0056 * hs, 0.0025 * hs
    face[FACE_BROW_Y], face[FACE_BROW_H] = ey + 0.02 * hs, 0.0045 * hs
    face[FACE_BROW_Z0], face[FACE_BROW_Z1] = 0.011 * hs, 0.047 * hs
    face[FACE_MOUTH_Y], face[FACE_MOUTH_HALF_W], face[FACE_MOUTH_HALF_H] = -0.054 * hs, 0.022 * hs, 0.0062 * hs
    face[FACE_EYE_RGB:FACE_EYE_RGB + 3] = idt.eye_colour
    face[FACE_LIP_RGB:FACE_LIP_RGB + 3] = idt.lip_colour
    face[FACE_BROW_RGB:FACE_BROW_RGB + 3] = np.array(idt.hair_colour) * 0.8 if style != "bald" else skin * 0.55
    face[FACE_HAIR_RGB:FACE_HAIR_RGB + 3] = idt.hair_colour
    face[[FACE_HAIRLINE_FRONT, FACE_HAIRLINE_SIDE, FACE_HAIRLINE_BACK]] = {"bald": (9.0, 9.0, 9.0)}.get(
        style, np.array([0.052, -0.005, -0.07]) * hs)
    face[FACE_HAIR_COVER] = 0.55 if style == "buzz" else 1.0
    if idt.glasses is not None:
        face[FACE_GLASSES], face[FACE_GLASSES_RGB:FACE_GLASSES_RGB + 3] = 1.0, idt.glasses
    face[FACE_STUBBLE] = idt.stubble
    # landmarks: joints, or points on the drawn face, hands and shoes. Each has its own body parts
    # and how deep inside them it may lie (a joint is hidden only by flesh that is not its own,
    # or by more of its own than its depth, e.g. the far shoulder behind the chest)
    head, face_parts = ("head",), ("head", "hair")
    lms: list[tuple] = []   # (bone, point in the bone frame, own parts, depth)
    lms.append(("neck", (B.front("neck", nose_c[1], 0.0, head), nose_c[1], 0.0), face_parts, 0.012))
    for sgn in (-1, 1):  # the person's left is -z; then the right
        for dz in (0.45, 0.0, -0.45):   # inner corner, centre, outer corner (share of the eye's half width)
            y, z = hc[1] + ey, sgn * (ez - dz * face[FACE_EYE_HALF_W])
            lms.append(("neck", (B.front("neck", y, z, head), y, z), face_parts, 0.012))
    for sgn in (-1, 1):
        lms.append(("neck", hc + np.array([-0.008, -0.008, sgn * 0.07]) * hs, face_parts, 0.06))
    for sgn in (-1, 1):
        y, z = hc[1] + face[FACE_MOUTH_Y], sgn * face[FACE_MOUTH_HALF_W]
        lms.append(("neck", (B.front("neck", y, z, head), y, z), face_parts, 0.012))
    joints = (("shoulder", (0, 0, 0), ("torso", "neck", "{}_upper_arm"), 0.2),
              ("elbow", (0, 0, 0), ("{}_upper_arm", "{}_forearm"), 0.1),
              ("elbow", (0, -L_fore, 0), ("{}_forearm", "{}_hand"), 0.08),
              ("elbow", (-0.022 * hand, -L_fore - 0.125 * hand, 0.0), ("{}_hand",), 0.05),   # pinky
              ("elbow", (0.024 * hand, -L_fore - 0.135 * hand, 0.0), ("{}_hand",), 0.05),    # index
              ("elbow", (0.052 * hand, -L_fore - 0.08 * hand, 0.0), ("{}_hand",), 0.05),     # thumb
              # MediaPipe's hips sit a little above the hip joints (on the pelvis's side)
              ("hip", (0, 0.04 * s, 0), ("pelvis", "torso", "{}_thigh"), 0.22),
              ("knee", (0, 0, 0), ("{}_thigh", "{}_shin"), 0.12),
              ("ankle", (0, 0, 0), ("{}_shin", "{}_foot"), 0.1),
              ("ankle", (-0.07 * s, -0.03 * s, 0.0), ("{}_foot", "{}_shin"), 0.05),        # heel
              ("ankle", (0.17 * s, -0.03 * s, 0.0), ("{}_foot",), 0.05))                  # toes
    for name, point, own, depth in joints:
        for side in ("left", "right"):
            lms.append((f"{side}_{name}", point, tuple(p.format(side) for p in own), depth))
    rows = list(zip(*B.rows))
    return Body(bone=np.array(rows[0]), part=np.array(rows[1]), material=np.array(rows[2]),
                origin=np.stack(rows[3]), lin=np.stack(rows[4]), cone=np.stack(rows[5]), tex=np.stack(rows[6]),
                clip=np.stack(rows[7]), materials=mats, face=face,
                lm_bone=np.array([J[b] for b, _, _, _ in lms]), lm_local=np.array([p for _, p, _, _ in lms], float),
                lm_parts=np.array([sum(1 << PART_INDEX[p] for p in own) for _, _, own, _ in lms]),
                lm_depth=np.array([d for _, _, _, d in lms]))


# ----------------------------------------------------------------------------- ray casting (numba)
@numba.njit(cache=True, fastmath=True, inline="always")
def _smoothstep(e0, e1, x):
    t = min(1.0, max(0.0, (x - e0) / (e1 - e0)))
    return t * t * (3.0 - 2.0 * t)


@numba.njit(cache=True, fastmath=True)
def _face_colour(tx, ty, tz, face, base, out):
    """Paint hair above the hairline, and eyes, brows and lips on the front of the head
    (head-centred metres: x forward, y up, z right) over ``base``."""
    for k in range(3):
        out[k] = base[k]
    # hairline: the forehead line in front, lower at the temples, lowest at the nape
    side = face[FACE_HAIRLINE_SIDE]
    if tx > 0.0:
        line = side + (face[FACE_HAIRLINE_FRONT] - side) * _smoothstep(0.025, 0.07, tx)
    else:
        line = side + (face[FACE_HAIRLINE_BACK] - side) * _smoothstep(0.0, -0.06, tx)
    if ty > line:
        w = face[FACE_HAIR_COVER] * _smoothstep(line, line + 0.006, ty)
        st = 0.9 + 0.1 * math.sin(70.0 * math.atan2(tz, tx) + 6.0 * math.sin(40.0 * ty))
        for k in range(3):
            out[k] = out[k] * (1.0 - w) + face[FACE_HAIR_RGB + k] * st * w
        return
    if tx <= 0.0:
        return
    ey, ez, sry, srz = face[FACE_EYE_Y], face[FACE_EYE_Z], face[FACE_EYE_HALF_H], face[FACE_EYE_HALF_W]
    iris, pupil = face[FACE_IRIS], face[FACE_PUPIL]
    az = abs(tz)
    if face[FACE_GLASSES] > 0.0:   # glasses: a rim round each eye, a bridge, the arms towards the ears
        gy, gz = (ty - ey - 0.001) / 0.0165, (az - ez) / 0.021
        g2 = gy * gy + gz * gz
        bridge = abs(ty - ey - 0.006) < 0.0018 and az < ez - 0.018
        arm = abs(ty - ey - 0.006) < 0.0016 and az > ez + 0.019 and tx < 0.075
        if 0.78 < g2 < 1.0 or bridge or arm:
            out[0], out[1], out[2] = face[FACE_GLASSES_RGB], face[FACE_GLASSES_RGB + 1], face[FACE_GLASSES_RGB + 2]
            return
    my, mw, mh = face[FACE_MOUTH_Y], face[FACE_MOUTH_HALF_W], face[FACE_MOUTH_HALF_H]
    stubble = face[FACE_STUBBLE]
    if stubble > 0.0 and ty < -0.03 and az < 0.062 and ty > -0.13:   # beard shadow on the jaw
        lips = ((ty - my) / (mh * 1.6)) ** 2 + (tz / (mw * 1.15)) ** 2 < 1.0
        if not lips:
            w = 0.45 * stubble * _smoothstep(-0.03, -0.045, ty) * _smoothstep(0.062, 0.05, az)
            for k in range(3):
                out[k] = out[k] * (1.0 - w) + face[FACE_BROW_RGB + k] * w
    # eyes: a white almond in a slightly shaded socket, an iris, a pupil, a dark upper lid line
    dy, dz = (ty - ey) / sry, (az - ez) / srz
    r2 = dy * dy + dz * dz
    if r2 < 4.0:
        sock = 1.0 - 0.12 * (1.0 - _smoothstep(1.0, 4.0, r2))
        for k in range(3):
            out[k] *= sock
    if r2 < 1.5:
        lid = 1.0 - _smoothstep(1.0, 1.5, r2)
        if dy > 0.1:  # lash line along the top of the almond
            for k in range(3):
                out[k] = out[k] * (1 - 0.85 * lid) + 0.03 * 0.85 * lid
        if r2 < 1.0:
            ir = math.sqrt((ty - ey) ** 2 + (az - ez) ** 2)
            if ir < pupil:
                c0, c1, c2 = 0.03, 0.03, 0.03
            elif ir < iris:
                c0, c1, c2 = face[FACE_EYE_RGB], face[FACE_EYE_RGB + 1], face[FACE_EYE_RGB + 2]
            else:
                c0, c1, c2 = 0.9, 0.88, 0.86
            out[0], out[1], out[2] = c0, c1, c2
            return
    # brows: a slightly arched band above each eye
    z0, z1, bh = face[FACE_BROW_Z0], face[FACE_BROW_Z1], face[FACE_BROW_H]
    if z0 < az < z1:
        u = (az - 0.5 * (z0 + z1)) / (0.5 * (z1 - z0))
        yb = face[FACE_BROW_Y] + 0.3 * bh * (1.0 - u * u)
        if abs(ty - yb) < 0.5 * bh * (1.0 - 0.4 * u * u):
            for k in range(3):
                out[k] = 0.2 * out[k] + 0.8 * face[FACE_BROW_RGB + k]
            return
    # lips: an ellipse, the upper lip darker, a dark parting line
    dm = ((ty - my) / mh) ** 2 + (tz / mw) ** 2
    if dm < 1.0:
        if abs(ty - my) < 0.14 * mh + 0.0004:
            lip = FACE_LIP_RGB
            out[0], out[1], out[2] = 0.18 * face[lip], 0.15 * face[lip + 1], 0.15 * face[lip + 2]
        else:
            sh = 0.85 if ty > my else 1.0
            for k in range(3):
                out[k] = face[FACE_LIP_RGB + k] * sh


@numba.njit(cache=True, fastmath=True, inline="always")
def _round_cone(ox, oy, oz, dx, dy, dz, L, r1, r2):
    """First hit t > 0 of the ray o + t d with the round cone from (0, 0, 0), radius r1, to
    (0, L, 0), radius r2 (shape space): (t or -1, shape-space normal). The surface is the two
    spheres and the cone tangent to both; the first hit is the nearest of the three."""
    best, nx, ny, nz = 1e30, 0.0, 1.0, 0.0
    dd = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    h = b * b - dd * (ox * ox + oy * oy + oz * oz - r1 * r1)
    if h > 0.0:
        t = (-b - math.sqrt(h)) / dd
        if t > 0.0:
            best, nx, ny, nz = t, ox + t * dx, oy + t * dy, oz + t * dz
    if L > 0.0:
        oyb = oy - L
        b = ox * dx + oyb * dy + oz * dz
        h = b * b - dd * (ox * ox + oyb * oyb + oz * oz - r2 * r2)
        if h > 0.0:
            t = (-b - math.sqrt(h)) / dd
            if 0.0 < t < best:
                best, nx, ny, nz = t, ox + t * dx, oyb + t * dy, oz + t * dz
        # the side: points whose axial y and radial rho satisfy y sin(a) + rho cos(a) = r1
        sn = (r1 - r2) / L
        c2 = 1.0 - sn * sn
        k = r1 - oy * sn
        A = c2 * (dd - dy * dy) - sn * sn * dy * dy
        Bh = c2 * (ox * dx + oz * dz) + k * sn * dy
        C = c2 * (ox * ox + oz * oz) - k * k
        h = Bh * Bh - A * C
        if h > 0.0 and abs(A) > 1e-14:
            sq = math.sqrt(h)
            for t in ((-Bh - sq) / A, (-Bh + sq) / A):
                if 0.0 < t < best:
                    y = oy + t * dy
                    if r1 * sn <= y <= L + r2 * sn:
                        rx, rz = ox + t * dx, oz + t * dz
                        rn = math.sqrt(c2) / math.sqrt(rx * rx + rz * rz + 1e-30)
                        best, nx, ny, nz = t, rx * rn, sn, rz * rn
    if best >= 1e30:
        return -1.0, nx, ny, nz
    return best, nx, ny, nz


@numba.njit(cache=True, fastmath=True)
def _draw_person(img, depth, ids, prims, mats, face, light, fx, fy, cx, cy):
    """Ray-cast every primitive over its screen box into ``img`` (H, W, 3) float32, keeping the
    nearest hit per pixel in ``depth`` (camera z, metres) and its part in ``ids``."""
    H, W = depth.shape
    base = np.empty(3)
    col = np.empty(3)
    Lx, Ly, Lz = light[LIGHT_DIR], light[LIGHT_DIR + 1], light[LIGHT_DIR + 2]
    for p in range(prims.shape[0]):
        pr = prims[p]
        bx, by, bz, br = pr[34], pr[35], pr[36], pr[37]
        if bz + br < NEAR:
            continue
        if bz - br > NEAR:
            x0 = cx + fx * min((bx - br) / (bz - br), (bx - br) / (bz + br))
            x1 = cx + fx * max((bx + br) / (bz - br), (bx + br) / (bz + br))
            y0 = cy + fy * min((by - br) / (bz - br), (by - br) / (bz + br))
            y1 = cy + fy * max((by + br) / (bz - br), (by + br) / (bz + br))
            c0, c1 = max(0, int(x0)), min(W, int(x1) + 1)
            r0, r1 = max(0, int(y0)), min(H, int(y1) + 1)
        else:
            c0, c1, r0, r1 = 0, W, 0, H
        if c0 >= c1 or r0 >= r1:
            continue
        part, mat = int(pr[1]), int(pr[2])
        M00, M01, M02, M10, M11, M12, M20, M21, M22 = pr[6], pr[7], pr[8], pr[9], pr[10], pr[11], pr[12], pr[13], pr[14]
        ax, ay, az = pr[3], pr[4], pr[5]
        # the camera (origin) in shape space
        ox = -(M00 * ax + M01 * ay + M02 * az)
        oy = -(M10 * ax + M11 * ay + M12 * az)
        oz = -(M20 * ax + M21 * ay + M22 * az)
        Lc, rc1, rc2 = pr[15], pr[16], pr[17]
        cnx, cny, cnz, cc = pr[30], pr[31], pr[32], pr[33]
        clipped = cnx * cnx + cny * cny + cnz * cnz > 0.0
        m = mats[mat]
        mk = int(m[MATERIAL_KIND])
        for r in range(r0, r1):
            ry = (r + 0.5 - cy) / fy
            for c in range(c0, c1):
                rx = (c + 0.5 - cx) / fx   # the ray is (rx, ry, 1): t is the camera depth z
                ux = M00 * rx + M01 * ry + M02
                uy = M10 * rx + M11 * ry + M12
                uz = M20 * rx + M21 * ry + M22
                inner = False
                if clipped:   # a clipped ellipsoid (hair): the near side, or the inside of the far side
                    a2 = ux * ux + uy * uy + uz * uz
                    b2 = ox * ux + oy * uy + oz * uz
                    disc = b2 * b2 - a2 * (ox * ox + oy * oy + oz * oz - rc1 * rc1)
                    if disc <= 0.0:
                        continue
                    sq = math.sqrt(disc)
                    t = (-b2 - sq) / a2
                    qx, qy, qz = ox + t * ux, oy + t * uy, oz + t * uz
                    if cnx * qx + cny * qy + cnz * qz < cc:
                        t = (-b2 + sq) / a2
                        qx, qy, qz = ox + t * ux, oy + t * uy, oz + t * uz
                        if cnx * qx + cny * qy + cnz * qz < cc:
                            continue
                        inner = True
                        qx, qy, qz = -qx, -qy, -qz
                else:
                    t, qx, qy, qz = _round_cone(ox, oy, oz, ux, uy, uz, Lc, rc1, rc2)
                if t < NEAR or t >= depth[r, c]:
                    continue
                # normal: the inverse transpose of shape -> camera, i.e. M^T q
                nx = M00 * qx + M10 * qy + M20 * qz
                ny = M01 * qx + M11 * qy + M21 * qz
                nz = M02 * qx + M12 * qy + M22 * qz
                nn = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz + 1e-30)
                nx, ny, nz = nx * nn, ny * nn, nz * nn
                # texture coordinates: along the cone (sleeves, socks), and in the bone's frame
                hb = (oy + t * uy) / Lc if Lc > 0.0 else 0.0
                hx, hy, hz = t * rx - pr[27], t * ry - pr[28], t - pr[29]
                tx = pr[18] * hx + pr[21] * hy + pr[24] * hz
                ty = pr[19] * hx + pr[22] * hy + pr[25] * hz
                tz = pr[20] * hx + pr[23] * hy + pr[26] * hz
                if m[MATERIAL_STRIPE] > 0.0:       # stripes across the bone
                    sel = int(math.floor(ty / m[MATERIAL_STRIPE])) % 2 == 1
                else:
                    sel = hb > m[MATERIAL_CUT]
                for k in range(3):
                    base[k] = m[MATERIAL_RGB_B + k] if sel else m[MATERIAL_RGB_A + k]
                neck_y, neck_w = m[MATERIAL_NECK_Y], m[MATERIAL_NECK_HALF_W]
                if ty > neck_y and tx > 0.0:   # a round neckline: skin in front, below the collar bones
                    if tz * tz / (neck_w * neck_w) + (ty - neck_y - 0.05) ** 2 / 0.0025 < 1.0:
                        for k in range(3):
                            base[k] = m[MATERIAL_NECK_RGB + k]
                if mk == KIND_FACE:
                    _face_colour(tx, ty, tz, face, base, col)
                    for k in range(3):
                        base[k] = col[k]
                elif mk == KIND_HAIR:       # hair: strands from the crown down, a darker inside
                    st = 0.88 + 0.12 * math.sin(70.0 * math.atan2(tz, tx) + 6.0 * math.sin(40.0 * ty))
                    for k in range(3):
                        base[k] *= st * (0.5 if inner else 1.0)
                # lighting: wrapped diffuse key light, sky/ground ambient, specular, rim
                vn = 1.0 / math.sqrt(rx * rx + ry * ry + 1.0)
                vx, vy, vz = -rx * vn, -ry * vn, -vn
                ndl = nx * Lx + ny * Ly + nz * Lz
                wrap = 0.45 if (mk == KIND_SKIN or mk == KIND_FACE) else 0.25
                dif = max(0.0, (ndl + wrap) / (1.0 + wrap))
                up = 0.5 + 0.5 * (nx * light[LIGHT_UP] + ny * light[LIGHT_UP + 1] + nz * light[LIGHT_UP + 2])
                hx2, hy2, hz2 = Lx + vx, Ly + vy, Lz + vz
                hn = 1.0 / math.sqrt(hx2 * hx2 + hy2 * hy2 + hz2 * hz2 + 1e-20)
                spec = 0.0
                if ndl > 0.0:
                    spec = m[MATERIAL_SPEC] * max(0.0, (nx * hx2 + ny * hy2 + nz * hz2) * hn) ** m[MATERIAL_SHINE]
                ndv = max(0.0, nx * vx + ny * vy + nz * vz)
                rim = light[LIGHT_RIM] * (1.0 - ndv) ** 3
                for k in range(3):
                    amb = light[LIGHT_GROUND_RGB + k] * (1.0 - up) + light[LIGHT_SKY_RGB + k] * up
                    key = light[LIGHT_RGB + k]
                    img[r, c, k] = base[k] * (amb + key * dif) + (spec + rim) * key
                depth[r, c] = t
                ids[r, c] = part


@numba.njit(cache=True, fastmath=True)
def _shadows(img, floor_xz, blobs, r0, r1, c0, c1):
    """Darken floor pixels in rows r0:r1, columns c0:c1 under soft blobs (x, z, radius, strength)."""
    for r in range(r0, r1):
        for c in range(c0, c1):
            fxw, fzw = floor_xz[r, c, 0], floor_xz[r, c, 1]
            if fxw > 1e8:   # the wall (NaN tests are unreliable under fastmath)
                continue
            light = 1.0
            for b in range(blobs.shape[0]):
                dx, dz = fxw - blobs[b, 0], fzw - blobs[b, 1]
                q = (dx * dx + dz * dz) / (blobs[b, 2] * blobs[b, 2])
                if q < 4.0:
                    light *= 1.0 - blobs[b, 3] * math.exp(-q)
            if light < 1.0:
                for k in range(3):
                    img[r, c, k] *= light


@numba.njit(cache=True, fastmath=True)
def _finish(img, ids, depth, grade, vignette, out):
    """Shade where one part passes in front of another (a cheap ambient occlusion: the share of 8
    nearby pixels more than 3 cm nearer), soften the person's silhouette and part edges (a 3x3
    average where the part changes), then grade (per-channel gain, lift, gamma), vignette and
    quantise to uint8."""
    H, W = ids.shape
    R = max(2, W // 64)
    for r in range(H):
        for c in range(W):
            i = ids[r, c]
            shade = 1.0
            if i >= 0:
                occ = 0
                for dr, dc in ((-R, 0), (R, 0), (0, -R), (0, R), (-R, -R), (-R, R), (R, -R), (R, R)):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < H and 0 <= cc < W and ids[rr, cc] >= 0 and depth[rr, cc] < depth[r, c] - 0.03:
                        occ += 1
                shade = 1.0 - 0.045 * occ
            edge = False
            if r > 0 and ids[r - 1, c] != i:
                edge = True
            elif r < H - 1 and ids[r + 1, c] != i:
                edge = True
            elif c > 0 and ids[r, c - 1] != i:
                edge = True
            elif c < W - 1 and ids[r, c + 1] != i:
                edge = True
            for k in range(3):
                v = img[r, c, k]
                if edge:
                    acc, n = 0.0, 0
                    for rr in range(max(0, r - 1), min(H, r + 2)):
                        for cc in range(max(0, c - 1), min(W, c + 2)):
                            acc += img[rr, cc, k]
                            n += 1
                    v = 0.5 * v + 0.5 * acc / n
                v = max(0.0, v * shade * grade[k] + grade[3 + k]) * vignette[r, c]
                v = min(1.0, v) ** grade[6]
                out[r, c, k] = np.uint8(v * 255.0 + 0.5)


# ----------------------------------------------------------------------------- camera and room
@dataclass
class Webcam:
    """A static pinhole camera: world-to-camera rotation ``R`` (rows: right, down, forward)."""
    position: np.ndarray    # (3,) world, y up
    R: np.ndarray           # (3, 3)
    fov_x: float            # degrees
    size: int
    framing: str

    @property
    def f(self) -> float:
        return self.size / 2.0 / math.tan(math.radians(self.fov_x) / 2.0)

    def to_camera(self, x: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> camera coordinates (x right, y down, z forward)."""
        return (x - self.position) @ self.R.T

    def K(self) -> np.ndarray:
        c = self.size / 2.0
        return np.array([[self.f, 0.0, c], [0.0, self.f, c], [0.0, 0.0, 1.0]])


def standing_height(idt: Identity, sk: Skeleton) -> float:
    """Floor to the top of the head, standing straight (hair excluded)."""
    o, hs = sk.offsets, idt.head * idt.height
    return float(sk.leg_length * 0.985 + 0.05 * idt.height + o[J["chest"], 1] + o[J["neck"], 1]
                 + 0.07 * idt.height + 0.23 * hs)


def look_at(position: np.ndarray, target: np.ndarray, roll_deg: float) -> np.ndarray:
    """World-to-camera rotation of a camera at ``position`` looking at ``target``, y up, rolled."""
    fwd = target - position
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return np.stack([c * right + s * down, -s * right + c * down, fwd])


# (bottom of the view as a share of the standing height, headroom in metres)
_FRAMING_EXTENT = {"head_shoulders": (0.7, 0.1), "upper_body": (0.5, 0.14), "half_body": (0.27, 0.16),
                   "full_body": (-0.06, 0.18)}


def place_webcam(rng: np.random.Generator, height: float, size: int, framing: str) -> tuple[Webcam, Stage]:
    """A webcam framing a person of standing ``height`` who stands at the origin facing +x."""
    bottom, headroom = _FRAMING_EXTENT[framing]
    top = height + headroom * rng.uniform(0.7, 1.5)
    bottom = bottom * height + rng.normal(0, 0.03)
    fov = float(rng.uniform(52, 72))
    extent = top - bottom
    dist = extent / 2 / math.tan(math.radians(fov) / 2)
    centre = 0.5 * (top + bottom)
    cam_h = centre + rng.uniform(-0.25, 0.15) * extent
    pos = np.array([dist, cam_h, rng.normal(0, 0.05) * dist])
    # aim at the middle of the framed extent (pitching changes what is in view a little)
    target = np.array([0.0, centre + rng.normal(0, 0.03) * extent, rng.normal(0, 0.04) * dist])
    cam = Webcam(pos, look_at(pos, target, float(rng.normal(0, 1.5))), fov, size, framing)
    return cam, Stage(half_width=dist * math.tan(math.radians(fov) / 2), depth=min(0.3, 0.12 * dist),
                      distance=dist)


def _floor_texture(rng: np.random.Generator, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, str]:
    """Colours (N, 3) of floor points (x, z metres): wood planks, tiles, carpet or concrete."""
    kind = str(rng.choice(["wood", "wood", "tiles", "carpet", "concrete"]))
    noise = rng.random((64, 64))
    fine = noise[(np.floor(x * 90).astype(int)) % 64, (np.floor(z * 90).astype(int)) % 64]
    if kind == "wood":
        base = np.array([0.55, 0.36, 0.2]) * rng.uniform(0.6, 1.3) + rng.normal(0, 0.03, 3)
        w = rng.uniform(0.1, 0.2)
        along, across = (x, z) if rng.random() < 0.5 else (z, x)
        k = np.floor(across / w)
        seg = np.floor((along + 0.37 * k) / rng.uniform(0.8, 1.6))      # staggered plank ends
        tint = 0.82 + 0.36 * ((np.sin(k * 12.9898 + seg * 78.233) * 43758.5453) % 1.0)
        grain = 1 + 0.08 * np.sin(along * 35 + 4 * np.sin(along * 3 + k * 1.7) + k)
        gap = np.minimum((across / w) % 1.0, 1 - (across / w) % 1.0) * w < 0.0025
        col = base * (tint * grain)[:, None] * (0.95 + 0.1 * fine)[:, None]
        col[gap] *= 0.55
    elif kind == "tiles":
        base = np.array(CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))]) * 0.5 + 0.4
        s = rng.uniform(0.3, 0.6)
        u, v = (x / s) % 1.0, (z / s) % 1.0
        grout = (np.minimum(u, 1 - u) * s < 0.004) | (np.minimum(v, 1 - v) * s < 0.004)
        tint = 0.93 + 0.1 * ((np.sin(np.floor(x / s) * 12.99 + np.floor(z / s) * 78.2) * 43758.5) % 1.0)
        col = base * tint[:, None] * (0.97 + 0.06 * fine)[:, None]
        col[grout] = base * 0.6
    elif kind == "carpet":
        base = CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))] * rng.uniform(0.5, 0.9)
        col = base * (0.85 + 0.3 * fine)[:, None]
    else:
        base = np.full(3, rng.uniform(0.4, 0.7)) + rng.normal(0, 0.02, 3)
        blot = noise[(np.floor(x * 3).astype(int)) % 64, (np.floor(z * 3).astype(int)) % 64]
        col = base * (0.9 + 0.12 * blot + 0.06 * fine)[:, None]
    return np.clip(col, 0, 1), kind


@dataclass
class Room:
    """The static part of every frame: the background image and where the floor is."""
    image: np.ndarray       # (H, W, 3) float32, 0..1
    floor_xz: np.ndarray    # (H, W, 2) float32 world (x, z) of floor pixels, 1e9 on the wall
    sky: np.ndarray         # (3,) ambient light from above (the room's average colour, brightened)
    ground: np.ndarray      # (3,) ambient light from below
    meta: dict


def make_room(rng: np.random.Generator, cam: Webcam, photo: np.ndarray | None, wall_x: float,
              face_photo: bool = False) -> Room:
    """Back wall (plane x = ``wall_x``) with a photo on it, painted, or a framed photo on paint;
    a textured floor (y = 0); rendered at twice the size and shrunk (anti-aliasing), defocused."""
    S = cam.size * 2
    f = cam.f * 2
    v, u = np.mgrid[0:S, 0:S].astype(np.float64) + 0.5
    d = np.stack([(u - S / 2) / f, (v - S / 2) / f, np.ones_like(u)], -1) @ cam.R   # world ray directions
    C = cam.position
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[..., 1] < -1e-6, -C[1] / d[..., 1], np.inf)
        t_wall = np.where(d[..., 0] < -1e-6, (wall_x - C[0]) / d[..., 0], np.inf)
    on_floor = t_floor < t_wall
    img = np.zeros((S, S, 3))
    hit = C + np.minimum(t_floor, t_wall)[..., None] * d
    # wall: painted, a photo covering it, or a framed photo hung on the paint
    wall = ~on_floor
    mode = str(rng.choice(["photo", "photo", "poster", "plain"])) if photo is not None else "plain"
    if mode == "photo" and face_photo:   # a wall-sized face draws a pose detector away from the person
        mode = "poster"
    paint = np.clip(np.array([0.85, 0.83, 0.78]) * rng.uniform(0.6, 1.05) + rng.normal(0, 0.05, 3), 0, 1)
    wz, wy = hit[..., 2], hit[..., 1]
    img[wall] = paint * (0.93 + 0.07 * np.clip(wy[wall] / 2.5, 0, 1))[:, None]
    if mode != "plain" and wall.any():
        Hp, Wp = photo.shape[:2]
        zs, ys = wz[wall], wy[wall]
        if mode == "photo":
            span_z, span_y = zs.max() - zs.min(), ys.max() - ys.min()
            mpp = max(span_z / Wp, span_y / Hp) / rng.uniform(1.0, 1.4)       # metres per photo pixel
            z0 = zs.max() + rng.uniform(0, max(Wp * mpp - span_z, 0))
            y0 = ys.max() + rng.uniform(0, max(Hp * mpp - span_y, 0))
        else:
            mpp = rng.uniform(0.6, 1.4) / max(Wp, Hp)
            z0 = rng.uniform(-0.8, 0.8) + Wp * mpp / 2
            y0 = rng.uniform(1.3, 2.0) + Hp * mpp / 2
        mx = ((z0 - wz) / mpp).astype(np.float32)      # image right is -z
        my = ((y0 - wy) / mpp).astype(np.float32)
        inside = wall & (mx >= 0) & (mx < Wp - 1) & (my >= 0) & (my < Hp - 1)
        sampled = cv2.remap(photo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        img[inside] = sampled[inside] / 255.0
        if mode == "poster":  # a dark frame round the picture
            border = 0.025 / mpp
            ring = wall & ~inside & (mx >= -border) & (mx < Wp - 1 + border) & (my >= -border) & (my < Hp - 1 + border)
            img[ring] = 0.08
    board = wall & (wy < rng.uniform(0.06, 0.12))
    img[board] = np.clip(np.array([0.9, 0.9, 0.88]) * rng.uniform(0.3, 1.0), 0, 1)
    floor_kind = "none"
    if on_floor.any():
        col, floor_kind = _floor_texture(rng, hit[..., 0][on_floor], hit[..., 2][on_floor])
        dist = np.linalg.norm(hit[on_floor] - C, axis=-1)
        img[on_floor] = col * (1.0 - 0.04 * np.clip(dist - 1.0, 0, 5))[:, None]
    # shrink, then defocus the room (the webcam focuses on the person; a sharp wall-sized photo of a
    # face would also compete with the person for a pose detector's attention)
    small = cv2.resize(img.astype(np.float32), (cam.size, cam.size), interpolation=cv2.INTER_AREA)
    sigma = rng.uniform(*{"photo": (1.0, 2.6), "poster": (0.4, 1.8)}.get(mode, (0.0, 1.2))) * cam.size / 256
    if sigma > 0.3:
        small = cv2.GaussianBlur(small, (0, 0), sigma)
    floor_xz = np.full((cam.size, cam.size, 2), 1e9, np.float32)
    ok = cv2.resize(on_floor.astype(np.float32), (cam.size, cam.size), interpolation=cv2.INTER_AREA) > 0.99
    xz = cv2.resize(np.where(on_floor[..., None], hit[..., [0, 2]], 0).astype(np.float32), (cam.size, cam.size),
                    interpolation=cv2.INTER_AREA)
    floor_xz[ok] = xz[ok]
    mean = small.reshape(-1, 3).mean(0)
    sky = 0.5 * mean / max(mean.mean(), 1e-3) * 0.5 + 0.25
    ground = small[ok].mean(0) * 0.45 if ok.any() else mean * 0.4
    return Room(np.ascontiguousarray(small, np.float32), floor_xz, sky, ground,
                {"wall": mode, "floor": floor_kind, "wall_distance": round(float(C[0] - wall_x), 3)})


# ----------------------------------------------------------------------------- clips
@dataclass
class AvatarConfig:
    """What an avatar clip may show; the defaults are the dataset's mix."""
    performance: PerformanceConfig | None = None    # None: the default PerformanceConfig
    framings: tuple[str, ...] = FRAMINGS
    framing_weights: tuple[float, ...] = (0.12, 0.33, 0.3, 0.25)
    p_photo: float = 0.85                           # a real photo on (or hung on) the back wall


STANDING_AVATARS = AvatarConfig(performance=STANDING_CONFIG, framings=("upper_body", "half_body", "full_body"),
                               framing_weights=(0.3, 0.4, 0.3))


def _rows(body: Body, P: np.ndarray, G: np.ndarray, cam: Webcam) -> np.ndarray:
    """(F, Pr, ROW) float64 primitives in camera coordinates for joint positions P (F, J+2, 3)
    and rotations G (F, J, 3, 3), in the layout ``_draw_person`` reads: 1 part, 2 material,
    3:6 shape origin, 6:15 camera -> shape linear map, 15:18 (L, r1, r2), 18:27 bone axes,
    27:30 texture origin, 30:34 clip plane, 34:38 bounding sphere."""
    F, n = P.shape[0], len(body.bone)
    Gb, Pb = G[:, body.bone], P[:, body.bone]                      # (F, Pr, 3, 3), (F, Pr, 3)
    to_cam = lambda local: (Pb + np.einsum("fpij,pj->fpi", Gb, local) - cam.position) @ cam.R.T  # noqa: E731
    Rc = np.einsum("ij,fpjk->fpik", cam.R, Gb)                     # bone axes in the camera frame
    M = np.einsum("fpij,pjk->fpik", Rc, body.lin)                  # shape space -> camera
    origin = to_cam(body.origin)
    rows = np.zeros((F, n, ROW))
    rows[..., 1], rows[..., 2] = body.part, body.material
    rows[..., 3:6] = origin
    rows[..., 6:15] = np.linalg.inv(M).reshape(F, n, 9)
    rows[..., 15:18] = body.cone
    rows[..., 18:27] = Rc.reshape(F, n, 9)
    rows[..., 27:30], rows[..., 30:34] = to_cam(body.tex), body.clip
    L, r = body.cone[:, 0], body.cone[:, 1:].max(-1)
    stretch = np.linalg.norm(body.lin, axis=1).max(-1)              # longest shape axis, in metres
    rows[..., 34:37] = origin + 0.5 * L[:, None] * M[..., :, 1]
    rows[..., 37] = (0.5 * L + r) * stretch
    return rows


def _blobs(P: np.ndarray, G: np.ndarray, light_w: np.ndarray, scale: float) -> np.ndarray:
    """(F, B, 4) soft shadow blobs on the floor (x, z, radius, strength) under feet, knees, hips,
    chest, head and hands, pushed away from the light."""
    toe = P[:, [J["right_ankle"], J["left_ankle"]]] + np.einsum(
        "fbij,j->fbi", G[:, [J["right_ankle"], J["left_ankle"]]], np.array([0.12, -0.04, 0.0]) * scale)
    pts = np.concatenate([P[:, [J["right_ankle"], J["left_ankle"], J["right_knee"], J["left_knee"], J["root"],
                                J["chest"], J["neck"]]], toe, P[:, -2:]], 1)
    base = np.array([0.07, 0.07, 0.07, 0.07, 0.14, 0.15, 0.1, 0.07, 0.07, 0.05, 0.05]) * scale
    amount = np.array([0.45, 0.45, 0.2, 0.2, 0.35, 0.3, 0.2, 0.45, 0.45, 0.12, 0.12])
    y = np.maximum(pts[..., 1], 0.0)
    push = -light_w[[0, 2]] / max(light_w[1], 0.2)
    xz = pts[..., [0, 2]] + 0.6 * y[..., None] * push
    return np.concatenate([xz, (base + 0.15 * y)[..., None], (amount * np.exp(-y / 0.6))[..., None]], -1)


def _blob_box(blobs: np.ndarray, cam: Webcam) -> tuple[int, int, int, int]:
    """Pixel rows and columns (r0, r1, c0, c1) that the blobs of one frame can darken."""
    x, z, r = blobs[:, 0], blobs[:, 1], 2.0 * blobs[:, 2]
    corners = np.stack([np.stack([x + sx * r, np.zeros_like(x), z + sz * r], -1)
                        for sx in (-1, 1) for sz in (-1, 1)], 0).reshape(-1, 3)
    pc = cam.to_camera(corners)
    S = cam.size
    if np.any(pc[:, 2] < NEAR):
        return 0, S, 0, S
    u, v = cam.f * pc[:, 0] / pc[:, 2] + S / 2, cam.f * pc[:, 1] / pc[:, 2] + S / 2
    return (int(np.clip(v.min(), 0, S)), int(np.clip(v.max() + 1, 0, S)),
            int(np.clip(u.min(), 0, S)), int(np.clip(u.max() + 1, 0, S)))


def _landmarks(body: Body, P: np.ndarray, G: np.ndarray, cam: Webcam) -> tuple[np.ndarray, np.ndarray]:
    """(F, 33, 4) landmarks with visibility 0 (set per frame later) and their camera points (F, 33, 3)."""
    world = P[:, body.lm_bone] + np.einsum("flij,lj->fli", G[:, body.lm_bone], body.lm_local)
    pc = cam.to_camera(world)
    z = np.maximum(pc[..., 2], 1e-3)
    S, f = cam.size, cam.f
    lm = np.zeros(pc.shape[:2] + (4,), np.float32)
    lm[..., 0] = (f * pc[..., 0] / z + S / 2) / S
    lm[..., 1] = (f * pc[..., 1] / z + S / 2) / S
    hip = 0.5 * (pc[:, 23, 2] + pc[:, 24, 2])
    lm[..., 2] = (pc[..., 2] - hip[:, None]) * f / (S * np.maximum(hip[:, None], 1e-3))
    return lm, pc


def _visibility(pc: np.ndarray, lm: np.ndarray, body: Body, depth: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(33,) share of the 3x3 pixels round each landmark that show it: the background, or one of
    its own parts at most ``lm_depth`` in front of it, or anything at most 1 cm in front (0 outside
    the image or behind the camera)."""
    S = depth.shape[0]
    u, v = lm[:, 0] * S, lm[:, 1] * S
    ok = (pc[:, 2] > NEAR) & (u >= 0) & (u < S) & (v >= 0) & (v < S)
    vis = np.zeros(len(lm), np.float32)
    if not ok.any():
        return vis
    r = np.clip(v.astype(int)[:, None] + np.array([-1, -1, -1, 0, 0, 0, 1, 1, 1]), 0, S - 1)
    c = np.clip(u.astype(int)[:, None] + np.array([-1, 0, 1, -1, 0, 1, -1, 0, 1]), 0, S - 1)
    front = pc[:, 2:3] - depth[r, c]                                  # (33, 9) how much lies in front
    part = ids[r, c]
    own = (part >= 0) & ((body.lm_parts[:, None] >> np.maximum(part, 0)) & 1 == 1)
    seen = (part < 0) | (front <= 0.01) | (own & (front <= body.lm_depth[:, None]))
    vis[ok] = seen[ok].mean(1)
    return vis


def avatar_clip(seed: int, n_frames: int, size: int, config: AvatarConfig | None = None) -> Clip:
    """A webcam clip of one person (see the module docstring); deterministic in its arguments."""
    from data.photo import load_photo, pick_photo

    cfg = config or AvatarConfig()
    r_id, r_cam, r_room, r_perf, r_look = (np.random.default_rng(s) for s in
                                           np.random.SeedSequence([seed, 0xA7A7]).spawn(5))
    idt = sample_identity(r_id)
    sk = idt.skeleton()
    body = make_body(idt, sk)
    w = np.array(cfg.framing_weights, float)
    framing = str(r_cam.choice(cfg.framings, p=w / w.sum()))
    cam, stage = place_webcam(r_cam, standing_height(idt, sk), size, framing)
    photo_name, photo = None, None
    if r_room.random() < cfg.p_photo:
        photo_name = pick_photo(seed)
        photo = load_photo(photo_name)
        if r_room.random() < 0.5:
            photo = np.ascontiguousarray(photo[:, ::-1])
    room = make_room(r_room, cam, photo, -(stage.depth + r_room.uniform(0.6, 2.5)),
                     face_photo=photo_name is not None and any(k in photo_name for k in FACE_PHOTOS))
    perf = performance(r_perf, n_frames, sk, cfg.performance or PerformanceConfig(), stage)
    P, G = forward_kinematics(perf.root_pos, perf.rot, sk)
    # light: a key light from the camera's side of the room, above; ambient from the room
    az = math.radians(r_look.uniform(-70, 70))
    el = math.radians(r_look.uniform(25, 65))
    light_w = np.array([math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az)])
    warmth = r_look.uniform(-0.08, 0.08)
    strength = r_look.uniform(0.55, 0.85)
    light = np.zeros(LIGHT_SIZE)
    light[LIGHT_DIR:LIGHT_DIR + 3] = cam.R @ light_w
    light[LIGHT_RGB:LIGHT_RGB + 3] = strength * np.array([1 + warmth, 1.0, 1 - warmth])
    light[LIGHT_SKY_RGB:LIGHT_SKY_RGB + 3] = room.sky * r_look.uniform(0.8, 1.1)
    light[LIGHT_GROUND_RGB:LIGHT_GROUND_RGB + 3] = room.ground
    light[LIGHT_UP:LIGHT_UP + 3] = cam.R @ np.array([0.0, 1.0, 0.0])
    light[LIGHT_RIM] = r_look.uniform(0.0, 0.12)
    grade = np.zeros(7, np.float32)
    grade[0:3] = r_look.uniform(0.92, 1.12) * (1 + r_look.normal(0, 0.03, 3))
    grade[3:6] = r_look.uniform(-0.02, 0.03)
    grade[6] = r_look.uniform(0.85, 1.05)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    vignette = (1 - r_look.uniform(0.0, 0.5) * (xx * xx + yy * yy) * 2).astype(np.float32)

    rows = _rows(body, P, G, cam)
    lms, pc = _landmarks(body, P, G, cam)
    blobs = _blobs(P, G, light_w, idt.height)
    F = n_frames
    frames = np.empty((F, size, size, 3), np.uint8)
    mask = np.empty((F, size, size), np.uint8)
    depth = np.empty((size, size), np.float32)
    ids = np.empty((size, size), np.int16)
    f_px = cam.f
    for f in range(F):
        img = room.image.copy()
        r0, r1, c0, c1 = _blob_box(blobs[f], cam)
        _shadows(img, room.floor_xz, blobs[f], r0, r1, c0, c1)
        depth.fill(np.inf)
        ids.fill(-1)
        _draw_person(img, depth, ids, rows[f], body.materials, body.face, light, f_px, f_px, size / 2, size / 2)
        _finish(img, ids, depth, grade, vignette, frames[f])
        mask[f] = ids >= 0
        lms[f, :, 3] = _visibility(pc[f], lms[f], body, depth, ids)
    meta = {"source": "avatar", "seed": int(seed), "fps": FPS, "framing": framing, "fov_x": round(cam.fov_x, 2),
            "camera_position": [round(float(v), 3) for v in cam.position], "photo": photo_name, **room.meta,
            "identity": asdict(idt), "segments": perf.segments,
            "motions": sorted({s["motion"] for s in perf.segments if "motion" in s})}
    return Clip(frames=frames, controls=lms.reshape(F, NUM_LANDMARKS * 4).copy(), landmarks=lms, mask=mask, meta=meta)
