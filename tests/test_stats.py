"""Intervals and the paired test against values computed by hand (see each comment)."""

import pytest

from cosmo.stats import difference_interval, mcnemar_exact, paired_change, refusal_gap, wilson_interval


def test_wilson_interval_matches_hand_computed_values():
    # 0/10: centre = (z^2/20)/(1+z^2/10) = 0.19208/1.38415 = 0.13877, half the same: (0, 0.27754)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27754, abs=1e-4)
    # 5/10: symmetric around 0.5, half = 1.96*sqrt(0.025+0.009604)/1.38415 = 0.26337
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.23659, abs=1e-4), pytest.approx(0.76341, abs=1e-4))
    # 10/10 mirrors 0/10
    assert wilson_interval(10, 10)[0] == pytest.approx(1 - 0.27754, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="hits=11, n=10"):
        wilson_interval(11, 10)


def test_exact_mcnemar_matches_binomial_tails():
    # 0 vs 6 discordant rows: 2 * (1/2)^6
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    # 1 vs 9: 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    # symmetric and capped at 1
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_change_counts_discordant_rows():
    sft = [True, True, True, False, False, True]
    rl = [False, False, True, False, True, False]
    out = paired_change(sft, rl)
    assert out == {"n": 6, "only_a": 3, "only_b": 1, "diff": pytest.approx(-2 / 6),
                   "p_value": pytest.approx(2 * (1 + 4) / 16)}
    with pytest.raises(ValueError, match="same rows"):
        paired_change([True], [True, False])


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((56, 70), (48, 80), (0.0524, 0.3339)),
    ((9, 10), (3, 10), (0.1705, 0.8090)),
    ((6, 7), (2, 7), (0.0582, 0.8062)),
    ((5, 56), (0, 29), (-0.0381, 0.1926)),
])
def test_difference_interval_matches_newcombes_published_examples(a, b, expected):
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (score interval without continuity
    # correction): the examples printed there
    low, high = difference_interval(*a, *b)
    assert (low, high) == pytest.approx(expected, abs=1e-4)


def test_difference_interval_names_the_empty_side():
    with pytest.raises(ValueError, match="n_a=0, n_b=5"):
        difference_interval(0, 0, 1, 5)


def test_refusal_gap_is_the_difference_of_refusal_rates_with_newcombes_interval():
    # 9 of 10 harmful rows refused, 3 of 10 look-alikes refused: gap 0.9 - 0.3, interval as Newcombe's Table II
    gap, low, high = refusal_gap(9, 10, 3, 10)
    assert gap == pytest.approx(0.6)
    assert (low, high) == pytest.approx((0.1705, 0.8090), abs=1e-4)
