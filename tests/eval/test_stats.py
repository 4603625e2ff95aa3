"""FVD-lite's uncertainty: bootstrap intervals, FD-infinity, content accuracy, the feature files."""
import numpy as np
import pytest
import torch

from eval.features import FeatureNetConfig, VideoFeatureNet, frechet_distance
from eval.stats import (Moments, add_fvd_stats, content_accuracy, content_accuracy_by_kind, content_label, frechet,
                        fvd_stats, load_features, rescore, save_features)


def _feats(rng, W, C, n, D, shift=0.0):
    return [[rng.normal(size=(n, D)) + shift for _ in range(C)] for _ in range(W)]


def test_fast_frechet_equals_the_sqrtm_formula():
    from scipy import linalg

    rng = np.random.default_rng(0)
    for n in (60, 12):                                   # 12 samples in 16-D: a singular covariance
        a, b = rng.normal(size=(n, 16)), 1.5 * rng.normal(size=(90, 16)) + 0.3
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        slow = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) \
            - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
        assert frechet(a.mean(0), s1, b.mean(0), s2) == pytest.approx(slow, rel=1e-5)
        assert frechet_distance(a, b) == pytest.approx(slow, rel=1e-5)


def test_moments_pool_any_multiset_of_clips_like_a_concatenation():
    rng = np.random.default_rng(1)
    f = _feats(rng, W=3, C=4, n=5, D=6)
    M = Moments(f)
    idx = np.array([2, 0, 2, 3])                                    # a bootstrap draw: clip 2 twice
    cat = np.concatenate([f[1][c] for c in idx])
    mu, cov = M.gaussian(idx, 1)
    assert np.allclose(mu, cat.mean(0)) and np.allclose(cov, np.cov(cat, rowvar=False))
    every = np.concatenate([f[w][c] for w in range(3) for c in idx])
    mu, cov = M.gaussian(idx)
    assert np.allclose(mu, every.mean(0)) and np.allclose(cov, np.cov(every, rowvar=False))


def _bias(seeds=10, C=8, n=10, D=8, spread=0.0):
    """Mean over data sets of the plain FVD-lite and of FD-infinity, generated and true clips drawn
    alike (the true distance is 0); with ``spread`` each clip has its own content (a mean)."""
    plain, inf = [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        means = rng.normal(scale=spread, size=(C, D))
        gt, gen = ([[rng.normal(size=(n, D)) + means[c] for c in range(C)]] for _ in range(2))
        plain.append(frechet(*Moments(gen).gaussian(np.arange(C), 0), *Moments(gt).gaussian(np.arange(C))))
        inf.append(fvd_stats(gen, gt, n_boot=0, seed=seed)["fvd_inf"][0])
    return float(np.mean(plain)), float(np.mean(inf))


def test_fd_infinity_removes_the_few_sample_bias_and_keeps_a_real_distance():
    plain, inf = _bias()
    assert plain > 0.4 and abs(inf) < 0.25 * plain                        # 80 samples in 8-D: biased up
    # every clip with its own content, a generator that keeps each clip's: the subsets are scored
    # against the truth of the same clips (paired), so most of the bias still goes
    plain, inf = _bias(spread=3.0)
    assert plain > 0.4 and abs(inf) < 0.5 * plain
    rng = np.random.default_rng(2)
    gt = _feats(rng, W=2, C=8, n=10, D=8)
    far = _feats(rng, W=2, C=8, n=10, D=8, shift=1.0)                     # |mu1 - mu2|^2 = 8
    f = fvd_stats(far, gt, n_boot=0)
    assert f["fvd_inf"][0] == pytest.approx(8.0, rel=0.25)
    assert f["fvd_ci"] is None and f["drift_fvd_ci"] is None


def test_bootstrap_intervals_cover_the_estimate_and_widen_with_fewer_clips():
    rng = np.random.default_rng(3)
    gt = _feats(rng, W=2, C=12, n=4, D=4)
    gen = [[g + (0.5 if w else 0.2) for g in gw] for w, gw in enumerate(_feats(rng, W=2, C=12, n=4, D=4))]
    full = fvd_stats(gen, gt, n_boot=100, seed=0)
    few = fvd_stats([gw[:3] for gw in gen], [gw[:3] for gw in gt], n_boot=100, seed=0)
    ref = np.concatenate([g for gw in gt for g in gw])
    for w in range(2):
        point = frechet_distance(np.concatenate(gen[w]), ref)
        lo, hi = full["fvd_ci"][w]
        assert lo <= point <= hi
        assert few["fvd_ci"][w][1] - few["fvd_ci"][w][0] > hi - lo
    lo, hi = full["drift_fvd_ci"]
    assert 0 < lo <= hi
    again = fvd_stats(gen, gt, n_boot=100, seed=0)                         # seeded: reproducible
    for k in ("_drift_boot", "_drift_boot_matched"):
        assert np.array_equal(again.pop(k), full.pop(k))
    assert again == full


def test_same_window_fvd_leaves_out_the_truths_own_changes():
    # the truth shows something else in its second window; a generator that follows it exactly
    rng = np.random.default_rng(9)
    gt = [[rng.normal(size=(10, 4)) + (3.0 if w else 0.0) for _ in range(6)] for w in range(2)]
    follow = [[g + 0.01 * rng.normal(size=g.shape) for g in gw] for gw in gt]
    s = fvd_stats(follow, gt, n_boot=20)
    assert max(s["fvd_matched"]) < 0.01 and max(hi for _, hi in s["fvd_matched_ci"]) < 0.01
    every = np.concatenate([g for gw in gt for g in gw])
    pooled = [frechet_distance(np.concatenate(follow[w]), every) for w in range(2)]
    assert min(pooled) > 5                                            # against every window: far in both


def test_the_baselines_drift_is_compared_with_aapts_on_the_same_resampled_clips():
    rng = np.random.default_rng(8)
    gt = _feats(rng, W=2, C=8, n=10, D=4)
    base = _feats(rng, W=2, C=8, n=10, D=4)
    aapt = [[g + 0.5 for g in gw] for gw in base]                          # drifts about 1x
    worse = [[g + (0.5 if w == 0 else 1.5) for g in gw] for w, gw in enumerate(base)]   # about 9x
    methods = {"aapt": {}, "same": {}, "worse": {}}
    add_fvd_stats(methods, {"aapt": aapt, "same": aapt, "worse": worse}, gt, n_boot=50)
    assert "drift_fvd_vs_aapt_ci" not in methods["aapt"] and "_drift_boot" not in methods["aapt"]
    assert methods["same"]["drift_fvd_vs_aapt_ci"] == [1.0, 1.0] and methods["same"]["drift_fvd_vs_aapt_2x"] == 0
    assert methods["worse"]["drift_fvd_vs_aapt_ci"][0] > 2 and methods["worse"]["drift_fvd_vs_aapt_2x"] == 1
    assert methods["worse"]["drift_fvd_matched_vs_aapt_2x"] == 1
    assert methods["same"]["drift_fvd_matched_vs_aapt_2x"] == 0


def test_content_label_and_accuracy():
    contents = FeatureNetConfig().contents
    assert content_label({"source": "world", "kind": "city"}, contents) == contents.index("world/city")
    assert content_label({"source": "avatar"}, contents) == contents.index("avatar")
    assert content_label({"source": "world", "kind": "moon"}, contents) == -1
    net = VideoFeatureNet(FeatureNetConfig(frames=8, size=32, widths=(8, 8, 16, 16), features=12)).eval()
    rng = np.random.default_rng(4)
    f = [[rng.normal(size=(5, 12)).astype(np.float32) for _ in range(3)]]
    with torch.no_grad():
        pred = [net.content(torch.nn.functional.silu(torch.from_numpy(x))).argmax(-1).numpy() for x in f[0]]
    labels = [int(np.bincount(p).argmax()) for p in pred[:2]] + [-1]      # clip 2: no label, not counted
    want = sum(int((p == y).sum()) for p, y in zip(pred[:2], labels[:2])) / 10
    assert content_accuracy(net, f, labels) == [pytest.approx(want)]
    # per kind: each class's clips only (two clips of one class pool, a third class stays apart)
    f3 = [f[0] + [rng.normal(size=(5, 12)).astype(np.float32)]]
    lab3 = [0, 1, -1, 0]
    by = content_accuracy_by_kind(net, f3, lab3)
    names = net.config.contents
    assert list(by) == [names[0].split("/")[-1], names[1].split("/")[-1]]
    with torch.no_grad():
        hit = [int((net.content(torch.nn.functional.silu(torch.from_numpy(x))).argmax(-1).numpy() == y).sum())
               for x, y in zip(f3[0], lab3)]
    assert by[names[0].split("/")[-1]] == [pytest.approx((hit[0] + hit[3]) / 10)]
    assert by[names[1].split("/")[-1]] == [pytest.approx(hit[1] / 5)]


def test_feature_file_round_trip_and_rescore_reproduce_the_eval_figures(tmp_path):
    rng = np.random.default_rng(5)
    gt = _feats(rng, W=2, C=4, n=6, D=5)
    gen = _feats(rng, W=2, C=4, n=6, D=5, shift=0.4)
    save_features(tmp_path / "f.npz", [(0, 10), (10, 20)], [1, 2, 1, 3], gt, {"aapt": gen})
    labels, g2, m2 = load_features(tmp_path / "f.npz")
    assert labels == [1, 2, 1, 3] and list(m2) == ["aapt"]
    assert np.allclose(m2["aapt"][1][2], gen[1][2], atol=1e-2)            # stored as float16
    r = rescore({"methods": {"aapt": {}}}, tmp_path / "f.npz", n_boot=20)
    ref = np.concatenate([g for gw in g2 for g in gw])
    o = r["methods"]["aapt"]
    assert o["fvd"][1] == pytest.approx(frechet_distance(np.concatenate(m2["aapt"][1]), ref), rel=1e-5)
    assert o["drift_fvd"] == pytest.approx(o["fvd"][1] / o["fvd"][0])
    assert len(o["fvd_ci"]) == 2 and len(o["fvd_inf"]) == 2


def test_fd_infinity_needs_two_subset_sizes():
    # with 2 clips the subsets are 1 and 2 clips: two points, a line, an intercept; 1 clip: none
    rng = np.random.default_rng(6)
    s = fvd_stats(_feats(rng, W=1, C=2, n=20, D=3), _feats(rng, W=1, C=2, n=20, D=3), n_boot=0)
    assert s["fvd_inf"] is not None
    s = fvd_stats(_feats(rng, W=1, C=1, n=20, D=3), _feats(rng, W=1, C=1, n=20, D=3), n_boot=0)
    assert s["fvd_inf"] is None and s["drift_fvd_inf"] is None


def tiny_model_and_net(tmp_path):
    """A tiny camera model in ``tmp_path/m`` and a random feature network in ``tmp_path/net``."""
    from tests.eval.test_eval import _tiny

    ae, dit = _tiny()
    ae.save_pretrained(tmp_path / "m" / "autoencoder")
    dit.save_pretrained(tmp_path / "m" / "generator")
    torch.manual_seed(0)
    net = VideoFeatureNet(FeatureNetConfig(frames=8, size=32, widths=(8, 8, 16, 16), features=12))
    net.save_pretrained(tmp_path / "net")
    return net


def test_evaluate_writes_features_that_rescore_to_its_own_figures(tmp_path):
    import json

    from eval.evaluate import evaluate

    tiny_model_and_net(tmp_path)
    r = evaluate(str(tmp_path / "m"), ["aapt", "autoencoder"], clips=3, n_frames=41, window=20,
                 features=str(tmp_path / "net"), revisit=False, features_out=str(tmp_path / "f.npz"), n_boot=10)
    o = r["methods"]["aapt"]
    assert len(o["fvd"]) == len(o["fvd_ci"]) == len(o["fvd_inf"]) == len(o["content_acc"]) == 2
    assert all(0 <= a <= 1 for a in o["content_acc"] + r["floor"]["content_acc"])
    again = rescore(json.loads(json.dumps(r)), tmp_path / "f.npz", VideoFeatureNet.from_pretrained(tmp_path / "net"),
                    n_boot=10)
    # float16 features: the same figures to a few parts in a thousand
    for k in ("fvd", "fvd_inf", "fvd_matched", "content_acc"):
        assert np.allclose(again["methods"]["aapt"][k], o[k], rtol=2e-2, atol=1e-3), k
