"""The source benchmark: one number per registered source and size, nulls with a reason otherwise."""
import data.sources
from data.bench import run


def test_reports_registered_sources_and_explains_missing_ones(monkeypatch):
    monkeypatch.delitem(data.sources.SOURCES, "avatar", raising=False)
    result = run(sources=("photo", "avatar"), sizes=(32,), frames=3, repeats=1)
    assert result["photo_32_fps"] > 0 and result["photo_32_clip_fps"] > 0 and "photo_reason" not in result
    assert result["avatar_32_fps"] is None and "not registered" in result["avatar_reason"]
