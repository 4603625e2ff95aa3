"""eval/merge.py: runs over consecutive clip ranges add up to one run over all of them."""
import json
import shutil

import numpy as np
import pytest

from eval.evaluate import evaluate
from eval.merge import main, merge, merge_features, merge_features_side_by_side
from tests.eval.test_stats import tiny_model_and_net


def _cli(tmp_path, capsys, runs: dict, features: list) -> dict:
    """``python -m eval.merge`` on the results ``runs`` (written as <name>.json) and ``features``:
    its JSON on stdout, as python -m eval --json."""
    for name, r in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(r))
    capsys.readouterr()
    main(["--results", *(str(tmp_path / f"{name}.json") for name in runs), "--features", *map(str, features),
          "--net", str(tmp_path / "net"), "--n-boot", "10"])
    return json.loads(capsys.readouterr().out)


def test_two_runs_merge_into_the_run_over_all_clips(tmp_path, capsys):
    net = tiny_model_and_net(tmp_path)
    kw = dict(n_frames=41, window=20, features=str(tmp_path / "net"), n_boot=10)
    m = str(tmp_path / "m")
    whole = evaluate(m, ["aapt", "autoencoder"], clips=3, revisit=True, features_out=str(tmp_path / "w.npz"), **kw)
    # the second range first: merge sorts by clip
    b = evaluate(m, ["aapt", "autoencoder"], clips=1, first_clip=2, revisit=True,
                 features_out=str(tmp_path / "b.npz"), **kw)
    a = evaluate(m, ["aapt", "autoencoder"], clips=2, revisit=True, features_out=str(tmp_path / "a.npz"), **kw)
    assert a["first_clip"] == 0 and b["first_clip"] == 2
    merge_features([tmp_path / "a.npz", tmp_path / "b.npz"], tmp_path / "ab.npz")
    r = merge([json.loads(json.dumps(b)), json.loads(json.dumps(a))], tmp_path / "ab.npz", net, n_boot=10)
    assert r["clips"] == 3 and r["clip_ranges"] == [[0, 2], [2, 3]]
    for meth in ("aapt", "autoencoder"):
        o, w = r["methods"][meth], whole["methods"][meth]
        for k in ("psnr_1s", "ssim_1s", "psnr", "rot_err", "trans_err", "drift_rot_err"):
            assert np.allclose(o[k], w[k], equal_nan=True), (meth, k)
        # features stored as float16: FVD-lite to a few parts in a thousand
        for k in ("fvd", "fvd_matched", "fvd_inf", "content_acc"):
            assert np.allclose(o[k], w[k], rtol=2e-2, atol=1e-3), (meth, k)
    assert set(r["floor"]) == set(whole["floor"])
    for k, v in whole["floor"].items():
        if k == "content_by_kind":
            assert set(r["floor"][k]) == set(v)
            for kind, acc in v.items():
                assert np.allclose(r["floor"][k][kind], acc, rtol=2e-2, equal_nan=True), kind
        else:
            assert np.allclose(r["floor"][k], v, rtol=2e-2, equal_nan=True), k    # content_acc: float16 features
    assert r["revisit"]["aapt"] == pytest.approx(whole["revisit"]["aapt"])
    assert r["revisit"]["ground_truth"] == pytest.approx(whole["revisit"]["ground_truth"])
    assert "from_means" not in r
    # the command line: JSON on stdout, as python -m eval --json
    cli = _cli(tmp_path, capsys, {"b": b, "a": a}, [tmp_path / "b.npz", tmp_path / "a.npz"])
    assert cli["clips"] == 3 and cli["methods"]["aapt"]["fvd"] == pytest.approx(r["methods"]["aapt"]["fvd"])
    # a run written before per-clip scores were kept counts by its means, weighted by its clips
    legacy = json.loads(json.dumps(a))
    legacy.pop("floor_per_clip")
    for o in [*legacy["methods"].values(), legacy["revisit"]]:
        o.pop("per_clip")
    r2 = merge([legacy, json.loads(json.dumps(b))])
    assert r2["from_means"] == ["clips 0-1"]
    assert r2["methods"]["aapt"]["psnr"] == pytest.approx(whole["methods"]["aapt"]["psnr"])
    assert r2["revisit"]["aapt"] == pytest.approx(whole["revisit"]["aapt"])


def test_merge_refuses_runs_that_do_not_add_up(tmp_path):
    base = {"model": "m", "source": "world", "control": "camera", "frames": 41, "window": 20,
            "windows": [[0, 20], [20, 40]], "clips": 2, "first_clip": 0,
            "methods": {"aapt": {"per_clip": {}}}}
    with pytest.raises(ValueError, match="overlap"):
        merge([base, {**base, "first_clip": 1}])
    with pytest.raises(ValueError, match="frames"):
        merge([base, {**base, "first_clip": 2, "frames": 81}])
    with pytest.raises(ValueError, match="methods"):
        merge([base, {**base, "first_clip": 2, "methods": {"distill": {"per_clip": {}}}}])
    pose = {**base, "control": "pose", "methods": {"aapt": {}}}
    with pytest.raises(ValueError, match="pose"):
        merge([pose, {**pose, "first_clip": 2}])


def test_runs_over_the_same_clips_merge_side_by_side(tmp_path, capsys):
    """A generator re-run over the clips of an older result replaces its row there: the other
    methods keep their figures, its revisit score is dropped when the re-run had none, and the
    comparisons against AAPT come from the joined features, as if all had run together."""
    net = tiny_model_and_net(tmp_path)
    kw = dict(n_frames=41, window=20, features=str(tmp_path / "net"), n_boot=10)
    m = str(tmp_path / "m")
    shutil.copytree(tmp_path / "m" / "generator", tmp_path / "m" / "distill")   # a second generator, for revisit
    whole = evaluate(m, ["aapt", "distill", "autoencoder"], clips=2, revisit=True, features_out=str(tmp_path / "w.npz"),
                     **kw)
    new = evaluate(m, ["aapt"], clips=2, revisit=False, features_out=str(tmp_path / "n.npz"), **kw)
    old = json.loads(json.dumps(whole))
    old["methods"]["aapt"]["psnr_1s"] = -1.0                 # an older generator's row, to be replaced
    merge_features_side_by_side([tmp_path / "w.npz", tmp_path / "n.npz"], tmp_path / "wn.npz")
    new["model"] = "candidate"                               # evaluated from another directory before shipping
    r = merge([old, json.loads(json.dumps(new))], tmp_path / "wn.npz", net, n_boot=10)
    assert r["model"] == old["model"]
    assert set(r["methods"]) == {"aapt", "distill", "autoencoder"} and r["clips"] == 2
    assert r["methods"]["aapt"]["psnr_1s"] == pytest.approx(whole["methods"]["aapt"]["psnr_1s"])
    for k in ("fvd", "drift_fvd", "drift_fvd_vs_aapt_ci"):
        for meth in ("aapt", "distill", "autoencoder"):
            if k in whole["methods"][meth]:
                assert np.allclose(r["methods"][meth][k], whole["methods"][meth][k], rtol=2e-2, atol=1e-3), (meth, k)
    assert "drift_fvd_vs_aapt_ci" in r["methods"]["autoencoder"]
    assert "aapt" not in r["revisit"] and "aapt" not in r["revisit"]["per_clip"]
    assert r["revisit"]["distill"] == pytest.approx(whole["revisit"]["distill"])
    assert r["revisit"]["per_clip"]["distill"] == pytest.approx(whole["revisit"]["per_clip"]["distill"])
    # the command line picks side by side from the clip ranges
    cli = _cli(tmp_path, capsys, {"old": old, "new": new}, [tmp_path / "w.npz", tmp_path / "n.npz"])
    assert cli["methods"]["aapt"]["fvd"] == pytest.approx(r["methods"]["aapt"]["fvd"])
    assert cli["command"].startswith("python -m eval.merge --results ")
    assert cli["merged_from"] == [old.get("command", "?"), new.get("command", "?")]
    # other clips' features are refused
    other = evaluate(m, ["aapt"], clips=2, first_clip=1, revisit=False, features_out=str(tmp_path / "o.npz"), **kw)
    with pytest.raises(ValueError, match="clips"):
        merge_features_side_by_side([tmp_path / "w.npz", tmp_path / "o.npz"], tmp_path / "x.npz")
    assert other["first_clip"] == 1
