"""The phase split of domains: general (phase 1), vertical (phase 2), held out (evaluation)."""

import pytest

from agentscaler_dagster.phases import split_domains


def test_split_is_a_partition_and_stable():
    labels = {f"d{i:02d}": label for i, label in enumerate(
        ["retail-orders", "music-playlists", "airline-flights", "weather-forecast", "library-books",
         "telecom-plans", "recipes-cooking", "calendar-events", "bank-accounts", "fitness-workouts"])}
    split = split_domains(labels, held_out_fraction=0.2, seed=7)
    assert sorted(split.general + split.vertical + split.held_out) == sorted(labels)
    assert len(split.held_out) == 2
    assert split == split_domains(labels, held_out_fraction=0.2, seed=7)
    trained_vertical = [labels[d] for d in split.vertical]
    assert all(any(k in l for k in ["retail", "airline", "telecom", "bank", "order", "account"]) for l in trained_vertical)
    assert split.phase_of(split.general[0]) == 1 and split.phase_of(split.vertical[0]) == 2
    assert split.phase_of(split.held_out[0]) is None


def test_both_phases_get_data_and_one_domain_is_held_out():
    split = split_domains({"a": "weather", "b": "music", "c": "recipes"}, held_out_fraction=0.0)
    assert split.general and split.vertical and split.held_out
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_domains({"a": "x"}, held_out_fraction=1.5)
