"""bench.decoder times the decoders side by side on a tiny autoencoder and reports them."""
from bench.decoder import run


def test_decoder_bench_times_every_variant():
    out = run("tiny", repeats=1, dtype="float32", size=32, threads=1)
    assert set(out["decode_ms_p50"]) == {"plain", "reference_unfused", "reference", "reference_light"}
    assert out["light_over_plain"] > 0
    assert all(v > 0 for v in out["decode_ms_p50"].values())
    assert out["steps_each"] == 8 and out["precision"]["dtype"] == "float32"
