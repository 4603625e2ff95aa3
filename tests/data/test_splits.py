"""Splits never share a seed."""
import itertools

import pytest

from data.sources import SPLITS, split_seed


def test_ranges_are_disjoint():
    for (a, (lo_a, hi_a)), (b, (lo_b, hi_b)) in itertools.combinations(SPLITS.items(), 2):
        assert lo_a < hi_a and lo_b < hi_b
        assert hi_a <= lo_b or hi_b <= lo_a, (a, b)


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_split_seed_stays_in_its_range(split):
    lo, hi = SPLITS[split]
    n = hi - lo
    seeds = [split_seed(split, i) for i in (0, 1, n // 2, n - 1)]
    assert seeds[0] == lo and seeds[-1] == hi - 1 and len(set(seeds)) == 4
    assert all(lo <= s < hi for s in seeds)
    for other, (olo, ohi) in SPLITS.items():
        if other != split:
            assert not any(olo <= s < ohi for s in seeds)


@pytest.mark.parametrize("split", sorted(SPLITS))
@pytest.mark.parametrize("offset", [0, 1, 10**9])
def test_out_of_range_index_raises(split, offset):
    lo, hi = SPLITS[split]
    with pytest.raises(ValueError):
        split_seed(split, hi - lo + offset)
    with pytest.raises(ValueError):
        split_seed(split, -1 - offset)


def test_unknown_split_raises():
    with pytest.raises(KeyError):
        split_seed("holdout", 0)
