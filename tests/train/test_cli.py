"""``python -m train`` as a newcomer runs it on a fresh clone: every stage's dry run works from a
folder with no runs/ yet, and the checkout itself tracks no runs/ (a committed link to a folder
of another machine broke every training command before it started)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train.config import RECIPE, resolve
from train.loop import train

ROOT = Path(__file__).resolve().parents[2]


def _train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "train", "--preset", "tiny", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_checkout_tracks_no_runs_folder():
    r = subprocess.run(["git", "ls-files", "runs"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    assert r.stdout.strip() == "", f"runs is tracked: {r.stdout}"
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/tiny/autoencoder/config.json"], cwd=ROOT)
    assert ignored.returncode == 0, "runs/ is not ignored"


def test_every_stage_dry_runs_from_a_fresh_folder(tiny_data, tmp_path):
    """Each stage's dry run (the config and model sizes, nothing trained), then the stage itself
    for two steps (in this process) so that the next stage's dry run finds the model it starts from;
    run directories are the preset's own (runs/tiny/<stage>, created on the way)."""
    for stage in RECIPE:
        r = _train(tmp_path, "--stage", stage, "--dry-run", "--set", f"data={tiny_data}", "--dtype", "float32")
        assert r.returncode == 0, f"{stage} dry run:\n{r.stderr[-2000:]}"
        out = json.loads(r.stdout[r.stdout.index("{"):])
        assert out["config"]["stage"] == stage and out["config"]["precision"] == "float32"
        assert all(n > 0 for n in out["parameters"].values()), out["parameters"]
        assert not (tmp_path / "runs" / "tiny" / stage / "checkpoints").exists()
        final = train(resolve("tiny", stage, dict(data=str(tiny_data), run_dir=str(tmp_path / "runs" / "tiny"),
                                                  steps=2, eval_every=2)))
        assert final.is_dir(), stage
