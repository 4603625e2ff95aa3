"""Sessions without a browser: pacing, dropping, slots, lifecycle, controls reaching the engine, bad input."""
import threading
import time

import av
import numpy as np
import pytest

from app.player import Frame, FramePlayer
from app.session import SessionError
from app.slots import Slots
from controls.landmarks import neutral_pose

from .conftest import person_frame

IMG = np.zeros((8, 8, 3), np.uint8)


def _chunk(start, n=4):
    return [Frame(IMG, start + k, 0, 0.0, 0.0) for k in range(n)]


def take(session, n, timeout=30.0, **kw):
    """Run the page's view of a stream until n frames arrived; closing it stops the stream."""
    frames, other = [], []
    gen = session.stream(**kw)
    end = time.monotonic() + timeout
    try:
        for ev in gen:
            (frames if ev.kind == "frame" else other).append(ev)
            if len(frames) >= n or time.monotonic() > end or ev.kind in ("stopped", "error"):
                break
    finally:
        gen.close()
    return frames, other


# ----------------------------------------------------------------------------- pacing
def test_player_spreads_a_chunk_at_the_frame_rate():
    p = FramePlayer(fps=40)
    p.push(_chunk(0), step_s=0.01)
    got, at = [], []
    while len(got) < 4:
        f = p.pop(1.0)
        got.append(f.index)
        at.append(time.monotonic())
    assert got == [0, 1, 2, 3]
    gaps = np.diff(at)
    assert np.all(gaps > 0.018) and np.all(gaps < 0.06)
    assert p.pop(0.05) is None


def test_player_drops_late_frames_instead_of_queueing():
    p = FramePlayer(fps=100)
    p.push(_chunk(0), step_s=0.01)
    time.sleep(0.1)                       # the page stalls: every frame fell due
    f = p.pop(0.1)
    assert f.index == 3 and p.dropped == 3
    assert p.pop(0.02) is None


def test_preempting_chunk_shows_at_once_and_drops_the_rest():
    p = FramePlayer(fps=10)               # 100 ms a frame: a chunk lasts 0.4 s
    p.push(_chunk(0), step_s=0.05)
    assert p.pop(0.5).index == 0
    t = time.monotonic()
    p.push(_chunk(10), step_s=0.05, preempt=True)
    f = p.pop(0.5)
    assert f.index == 10 and time.monotonic() - t < 0.05 and p.dropped == 3


def test_slow_engine_spreads_frames_over_the_step_time():
    p = FramePlayer(fps=100)
    p.push(_chunk(0), step_s=0.2)
    assert p.frame_dt == pytest.approx(0.05)


# ----------------------------------------------------------------------------- slots
def test_slots_limit_and_wait_in_line():
    s = Slots(1)
    assert s.acquire("a") == 0
    assert s.acquire("b") == 1 and s.acquire("c") == 2
    s.release("a")
    assert s.acquire("c") == 1            # b came first
    assert s.acquire("b") == 0
    s.leave_line("c")
    s.release("b")
    assert s.acquire("c") == 0


# ----------------------------------------------------------------------------- streams
def test_world_stream_delivers_frames_and_frees_its_slot(make_manager):
    m = make_manager()
    s = m.get("tab")
    s.mode = "world"
    frames, other = take(s, 12)
    assert len(frames) == 12 and other[-1].message.startswith("Running world-tiny")
    idx = [e.frame.index for e in frames]
    assert idx == sorted(idx) and idx[0] == 0
    assert frames[-1].frame.image.shape == (32, 32, 3)
    assert s.state == "stopped" and m.slots.in_use == 0       # closing the page's generator stopped it


def test_keys_reach_the_camera_in_the_engine(make_manager):
    s = make_manager().get("tab")
    s.mode = "world"
    gen = s.stream()
    next(ev for ev in gen if ev.kind == "frame")
    s.set_keys("arrowright", seq=5)
    seen = None
    for ev in gen:
        if ev.kind == "frame" and ev.frame.control_seq == 5:
            seen = ev.frame
            break
    yaw = s.engine.state.rig.state.yaw
    gen.close()
    assert seen is not None and yaw > 0


def test_frames_follow_the_pose(make_manager):
    """Same seed and inputs: same frames; another motion: other frames (the control reaches the
    model through retargeting, which moves the avatar by the driver's motion)."""
    m = make_manager()
    lm = neutral_pose()
    raised = lm.copy()
    raised[[13, 15, 17, 19, 21], 1] -= 0.35              # left arm up
    runs = []
    for poses in ((lm, lm, lm), (lm, lm, lm), (lm, raised, raised)):
        s = m.get("api")
        s.mode = "avatar"
        s.api_start(7, None)
        runs.append(np.stack([s.api_step(pose, 1)[0] for pose in poses]))
        m.close("api")
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_missing_person_relaxes_to_neutral_and_the_stream_goes_on(make_manager):
    s = make_manager().get("tab")
    s.mode = "avatar"
    s.set_pose_source("webcam", None)
    s.pose.smoother.config.hold_s = 0.1
    s.pose.smoother.config.relax_s = 0.1
    gen = s.stream()
    for _ in range(4):
        s.webcam_frame(person_frame(0.2))
    n = 0
    for ev in gen:                      # nobody in view any more (the webcam went quiet)
        n += ev.kind == "frame"
        if n >= 30:
            break
    gen.close()
    assert s.pose.status == "neutral"
    assert np.allclose(s.pose.current(), neutral_pose(), atol=1e-3)


def test_webcam_person_is_found_and_drawn(make_manager):
    s = make_manager().get("tab")
    s.mode = "avatar"
    for _ in range(3):
        prev = s.webcam_frame(person_frame(0.0))
    assert s.pose.detected and s.pose.status == "tracking"
    # the webcam with the driver's skeleton, and beside it the retargeted pose, no taller than the panel
    assert prev.shape[0] <= 240 and prev.shape[1] > prev.shape[0] and prev.shape[1] <= 480
    # landmarks are in the coordinates of the square the model sees: the face is near the top middle
    for pose in (s.pose.driver, s.pose.current()):
        assert 0.3 < pose[0, 0] < 0.7 and 0.0 < pose[0, 1] < 0.6


def test_recorded_motion_drives_without_webcam(make_manager):
    m = make_manager()
    s = m.get("tab")
    s.mode = "avatar"
    s.set_pose_source("motion", "dance_a")
    a = s.pose.next_frames(4, 0.0)
    b = s.pose.next_frames(4, 0.0)
    assert not np.allclose(a, b) and s.pose.status == "playing dance_a"
    frames, _ = take(s, 6)
    assert len(frames) == 6
    assert any(e.preview is not None for e in frames)           # the driving skeleton, every 4th frame


def test_reset_restarts_from_the_first_frame(make_manager):
    s = make_manager().get("tab")
    s.mode = "world"
    gen = s.stream()
    for ev in gen:
        if ev.kind == "frame" and ev.frame.index >= 8:
            break
    s.request_reset()
    restarted = False
    for ev in gen:
        if ev.kind == "frame" and ev.frame.index == 0:
            restarted = True
            break
    gen.close()
    assert restarted


def test_idle_stream_stops_and_idle_session_is_freed(make_manager):
    m = make_manager(idle_timeout=0.6, orphan_s=0.3, reap_every=0.1)
    s = m.get("tab")
    s.mode = "world"
    frames, other = take(s, 10_000, timeout=10)
    assert other[-1].kind == "stopped" and "without input" in other[-1].message
    time.sleep(1.0)
    assert m.peek("tab") is None and s.state == "closed" and s.engine is None


def test_closing_a_tab_frees_its_engine_and_slot(make_manager):
    m = make_manager()
    s = m.get("tab")
    s.mode = "world"
    gen = s.stream()
    next(ev for ev in gen if ev.kind == "frame")
    m.close("tab")
    rest = list(gen)
    assert s.state == "closed" and s.engine is None and m.slots.in_use == 0
    assert all(ev.kind != "frame" for ev in rest[1:])


def test_a_stream_ending_as_its_tab_closes_leaves_the_session_closed(make_manager):
    """The tab's close (Gradio's unload) and the end of its stream (Gradio closing the generator) arrive
    together; whichever thread is still stopping the worker must not reopen the closed session."""
    m = make_manager()
    s = m.get("tab")
    s.mode = "world"
    s.start()
    worker, inside, closed = s._thread, threading.Event(), threading.Event()
    joins = []

    class SlowWorker:                 # the worker as the first stop sees it: it finishes after the close
        def join(self, timeout=None):
            joins.append(threading.current_thread().name)
            if len(joins) == 1:
                inside.set()
                closed.wait(10)
            worker.join(timeout)

    s._thread = SlowWorker()
    ending = threading.Thread(target=s.stop, name="stream-end")
    ending.start()
    assert inside.wait(10)
    m.close("tab")                    # the unload, while the stream's stop waits for the worker
    closed.set()
    ending.join(10)
    assert joins[0] == "stream-end" and not worker.is_alive()
    assert s.state == "closed" and s.engine is None and m.slots.in_use == 0
    with pytest.raises(SessionError, match="ended"):
        next(s.stream())              # a closed session never streams again; the tab gets a new one
    with pytest.raises(SessionError, match="ended"):
        s.api_start(0, None)
    assert m.get("tab") is not s


def _steer(s, k: int) -> None:
    """Tab k: its own seed and a steady camera motion (held sliders, no key presses: deterministic)."""
    s.mode = "world"
    s.seed = 100 + k
    s.set_slider("yaw", (-3.0, -1.0, 1.0, 3.0, 0.0)[k])
    s.set_slider("forward", 0.1 * k)


def test_four_tabs_at_once_equal_their_solo_runs_and_a_fifth_waits_for_a_slot(make_manager):
    """4 streams at once (max_streams=4), each in its own threads as the page drives it: with fixed
    seeds every tab's frames equal what it makes alone (no state bleeds between sessions), frames
    keep coming to all four, and a fifth tab is told it waits in line, then gets the first free slot."""
    n = 24
    m = make_manager(max_streams=4)
    solo = {}
    for k in range(5):
        s = m.get(f"solo-{k}")
        _steer(s, k)
        solo[k] = {e.frame.index: e.frame.image for e in take(s, n)[0]}
        m.close(s.id)
    started = [threading.Event() for _ in range(4)]
    in_line = threading.Event()
    out: dict[int, dict] = {}

    def tab(k: int) -> None:
        s = m.get(f"tab-{k}")
        _steer(s, k)
        r = out[k] = {"frames": {}, "at": [], "waiting": []}
        gen = s.stream()
        try:
            for ev in gen:
                if ev.kind == "waiting":
                    r["waiting"].append(ev.message)
                    in_line.set()
                elif ev.kind == "frame":
                    r["frames"][ev.frame.index] = ev.frame.image
                    r["at"].append(time.monotonic())
                    if k < 4:
                        started[k].set()
                    if len(r["frames"]) >= n:
                        break
                elif ev.kind in ("stopped", "error"):
                    r["end"] = ev.message
                    break
            if k < 4:
                in_line.wait(60)              # keep the slot until the fifth tab is in line
                r["left_at"] = time.monotonic()
        finally:
            gen.close()

    threads = [threading.Thread(target=tab, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    assert all(e.wait(60) for e in started), "the first four tabs did not all start"
    assert m.slots.in_use == 4
    fifth = threading.Thread(target=tab, args=(4,))
    fifth.start()
    for t in threads + [fifth]:
        t.join(120)
    assert all(not t.is_alive() for t in threads + [fifth])

    assert out[4]["waiting"][0] == "All 4 stream slots are in use: waiting for a free slot. You are number 1 in line."
    for k in range(5):
        r = out[k]
        assert "end" not in r, r.get("end")
        assert len(r["frames"]) == n
        assert not r["waiting"] or k == 4
        common = sorted(set(r["frames"]) & set(solo[k]))
        assert len(common) >= n // 2 and common[-1] >= n - 4          # frames may drop, never differ
        for i in common:
            assert np.array_equal(r["frames"][i], solo[k][i]), f"tab {k} frame {i} differs from its solo run"
        gaps = np.diff(r["at"])
        assert gaps.max() < 10.0, f"tab {k} stalled {gaps.max():.1f} s"                # liveness, not speed
    late = sorted(set(out[0]["frames"]) & set(out[1]["frames"]))[-1]
    assert not np.array_equal(out[0]["frames"][late], out[1]["frames"][late])       # the tabs really differ
    freed = min(out[k]["left_at"] for k in range(4))
    assert out[4]["at"][0] - freed < 10.0, "the fifth tab did not get the freed slot"
    assert m.slots.in_use == 0


def test_recording_makes_an_h264_mp4(make_manager):
    s = make_manager().get("tab")
    s.mode = "world"
    s.start_recording()                         # armed before Start: starts with the stream
    take(s, 20)
    path = s.last_recording
    assert path is not None and path.suffix == ".mp4"
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "h264"
        n = sum(1 for _ in c.decode(st))
    assert n >= 20


def test_unavailable_mode_is_a_clear_error(make_manager, tmp_path):
    from app.models import ModelStore
    m = make_manager()
    m.store = ModelStore([])
    s = m.get("tab")
    s.mode = "avatar"
    with pytest.raises(SessionError, match="No avatar"):
        take(s, 1)
    assert m.slots.in_use == 0


def test_readout_rates_count_steps_not_the_frames_of_one_step():
    """The 4 frames of a step share a timestamp: right after Start the rate says nothing (it
    said 3000000 fps), and over a few steps it is the true rate."""
    from app.player import Timings

    t = Timings()
    t.made.extend([10.0] * 4)
    assert t.rate(t.made, now=10.0) == 0.0
    for k in range(1, 6):                              # a step of 4 frames every 1/6 s: 24 fps
        t.made.extend([10.0 + k / 6] * 4)
    assert t.rate(t.made, now=10.0 + 5 / 6) == pytest.approx(24.0)
    shown = Timings().shown
    shown.extend(100.0 + k / 24 for k in range(25))
    assert Timings.rate(shown, now=101.0) == pytest.approx(24.0)


def test_the_avatar_keeps_the_body_of_its_first_frame(make_manager):
    """A shipped render: its true pose (MediaPipe finds nobody in it); an upload with a person:
    what MediaPipe finds there; an upload with nobody: a standard body and a clear note."""
    import json

    from app.examples import Examples

    ex = Examples()
    m = make_manager()
    m.example_poses = ex.poses()
    s = m.get("tab")
    render = ex.default("avatar")
    want = np.asarray(json.loads((ex.gallery("avatar")[0].path.with_suffix(".pose.json")).read_text()), np.float32)
    np.testing.assert_array_equal(s.avatar_body(render), want)
    assert s.body_note == ""
    person = s.avatar_body(person_frame(0.0))
    assert person is not None and 0.3 < person[0, 0] < 0.7
    assert s.avatar_body(np.full((128, 128, 3), 127, np.uint8)) is None
    assert "No person found" in s.body_note
    s.mode = "avatar"
    s.set_first_frame("avatar", render)
    s.api_start(0, None)
    from controls.landmarks import sanitize

    np.testing.assert_allclose(s.pose.body, sanitize(want))              # the stream starts with that body
    np.testing.assert_allclose(s.pose.current(), sanitize(want))


def test_the_page_steers_and_reads_the_session_through_its_public_methods(make_manager):
    s = make_manager().get("tab")
    s.mode = "world"
    s.set_keys("w,arrowleft")
    s.set_slider("yaw", 1.0)
    assert s.camera.moving
    s.stop_moving()                                  # Stop moving: sliders to 0, keys up
    assert not s.camera.moving and s.camera.keys == frozenset()
    assert s.loaded_model is None and not s.recording and not s.recording_requested
    s.start_recording()                              # no stream yet: armed, not recording
    assert s.recording_requested and not s.recording
    assert s.stop_recording() is None and not s.recording_requested
