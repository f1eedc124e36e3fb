import random
from collections import Counter

from aigw.config.parse import parse_config
from aigw.routing.select import weighted_pick


def targets(*weights):
    return parse_config(
        {"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "openai", "weight": w, "name": str(i)} for i, w in enumerate(weights)]},
        frozenset(),
    ).targets


def test_weighted_distribution_matches_weights():
    # GIVEN weights 0.7 / 0.2 / 0.1 and a seeded generator
    ts = targets(0.7, 0.2, 0.1)
    rng = random.Random(42)
    n = 20_000
    # WHEN picking many times
    counts = Counter(weighted_pick(ts, rng).name for _ in range(n))
    # THEN a chi-square test against the expected shares passes (df=2, p=0.001 -> 13.8)
    expected = {"0": 0.7 * n, "1": 0.2 * n, "2": 0.1 * n}
    chi2 = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < 13.8, counts


def test_zero_weight_is_never_picked_and_default_weight_is_one():
    ts = targets(0, 1)
    rng = random.Random(7)
    assert {weighted_pick(ts, rng).name for _ in range(2000)} == {"1"}
    default = parse_config({"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "openai"}]}, frozenset()).targets
    assert default[0].weight == 1.0


def test_all_zero_weights_pick_uniformly():
    ts = targets(0, 0)
    rng = random.Random(3)
    counts = Counter(weighted_pick(ts, rng).name for _ in range(4000))
    assert 1800 < counts["0"] < 2200


def test_same_seed_same_choices():
    ts = targets(1, 1, 1)
    seeded_a, seeded_b = random.Random(5), random.Random(5)
    a = [weighted_pick(ts, seeded_a).name for _ in range(200)]
    b = [weighted_pick(ts, seeded_b).name for _ in range(200)]
    assert a == b and set(a) == {"0", "1", "2"}
    other = random.Random(6)
    assert [weighted_pick(ts, other).name for _ in range(200)] != a  # the seed, not luck, decides
