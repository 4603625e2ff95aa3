"""The camera rig: the one camera model the renderers and the app share."""
import numpy as np

from controls.camera import CameraRig, CameraState, RigLimits, relative_pose, rotation_c2w


def test_yaw_right_pitch_up_conventions():
    R = rotation_c2w(90.0, 0.0, 0.0)
    assert np.allclose(R[:, 2], [1, 0, 0])            # yaw 90: looking east
    R = rotation_c2w(0.0, 30.0, 0.0)
    assert R[2, 2] > 0                                 # pitch up: forward has a +z component


def test_relative_pose_of_a_pure_yaw():
    rig = CameraRig(64, 64, CameraState())
    a = rig.w2c()
    rig.step(np.array([10.0, 0, 0, 0, 0, 0, 0]))
    rel = relative_pose(a, rig.w2c())
    angle = np.degrees(np.arccos((np.trace(rel[:3, :3]) - 1) / 2))
    assert np.isclose(angle, 10.0) and np.allclose(rel[:3, 3], 0)


def test_walls_block_instead_of_lifting_the_camera():
    wall = lambda x, y: 10.0 if y > 1.0 else 0.0                     # noqa: E731 (a wall north of y = 1)
    state = CameraState(position=np.array([0.0, 0.0, 2.0]))          # facing north
    blocked = CameraRig(64, 64, state, RigLimits(clearance=1.0, max_climb=0.5), ground=wall)
    climbs = CameraRig(64, 64, state, RigLimits(clearance=1.0), ground=wall)
    for _ in range(5):
        blocked.step(np.array([0, 0, 0, 0.5, 0, 0, 0]))
        climbs.step(np.array([0, 0, 0, 0.5, 0, 0, 0]))
    assert blocked.state.position[1] <= 1.0 and blocked.state.position[2] == 2.0
    assert climbs.state.position[1] > 1.0 and climbs.state.position[2] >= 11.0


def test_non_finite_controls_are_ignored():
    rig = CameraRig(64, 64, CameraState())
    before = rig.w2c().copy()
    rig.step(np.array([np.nan, np.inf, -np.inf, np.nan, 0, 0, 0]))
    assert np.allclose(rig.w2c(), before)


def test_reprojection_map_agrees_with_the_pixel_homography():
    """Sampling a frame through the normalised map equals OpenCV's warp by the pixel homography."""
    import torch
    import torch.nn.functional as Fn

    from controls.camera import reprojection_map, rotation_homography
    from eval.metrics import warp_frame

    rng = np.random.default_rng(0)
    img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    img = np.asarray(Fn.avg_pool2d(torch.from_numpy(img).float().permute(2, 0, 1)[None], 5, 1, 2)[0]
                     .permute(1, 2, 0).round().byte())                        # smooth: bilinear agrees
    src = CameraRig(64, 48, CameraState(fov_x=60.0))
    dst = CameraRig(64, 48, CameraState(fov_x=60.0))
    dst.step(np.array([3.0, -2.0, 1.5, 0, 0, 0, 0.05]))                       # yaw, pitch, roll, zoom
    ref = warp_frame(img, rotation_homography(src.K(), src.w2c(), dst.K(), dst.w2c())).astype(np.float32)
    m = torch.from_numpy(reprojection_map(src.K(), src.w2c(), dst.K(), dst.w2c(), 64, 48))
    ys = (torch.arange(48) + 0.5) / 48 * 2 - 1
    xs = (torch.arange(64) + 0.5) / 64 * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    p = torch.stack([gx, gy, torch.ones_like(gx)], -1) @ m.T
    grid = (p[..., :2] / p[..., 2:])[None]
    out = Fn.grid_sample(torch.from_numpy(img).float().permute(2, 0, 1)[None], grid, align_corners=False,
                         padding_mode="border")[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref)[4:-4, 4:-4].mean() < 1.0                        # interior, away from the edges


def test_clip_reprojection_maps_compose_to_the_direct_map():
    from controls.camera import clip_reprojection_maps, reprojection_map

    rig = CameraRig(32, 32, CameraState())
    Ks, w2cs = [rig.K()], [rig.w2c()]
    for _ in range(8):
        rig.step(np.array([2.0, 0.5, 0, 0, 0, 0, 0]))
        Ks.append(rig.K())
        w2cs.append(rig.w2c())
    maps = clip_reprojection_maps(np.stack(Ks), np.stack(w2cs), 32, 32, fpl=4)       # (3, 3, 3)
    assert maps.shape == (3, 3, 3) and np.allclose(maps[0], np.eye(3))
    direct = reprojection_map(Ks[0], w2cs[0], Ks[8], w2cs[8], 32, 32)
    composed = maps[1] @ maps[2]
    assert np.allclose(composed / composed[2, 2], direct, atol=1e-5)
