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


def test_split_by_service_keeps_held_out_services_out_of_training():
    from agentscaler_dagster.phases import split_by_service

    services = {"a": {"airline"}, "b": {"airline", "hotel"}, "c": {"hotel"}, "d": {"music"}, "e": {"bank"},
                "f": {"bank", "music"}, "g": {"weather"}, "h": {"retail"}, "i": {"retail"}, "j": {"calendar"}}
    labels = {d: "+".join(sorted(s)) for d, s in services.items()}
    for seed in range(6):
        split = split_by_service(labels, services, held_out_fraction=0.2, seed=seed)
        assert sorted(split.general + split.vertical + split.held_out + split.excluded) == sorted(labels)
        assert split.held_out and (split.general or split.vertical)
        held = set(split.held_out_services)
        assert all(services[d] <= held for d in split.held_out)
        trained = split.general + split.vertical
        assert not any(services[d] & held for d in trained), "no tool of a held-out service is trained on"
        assert all(services[d] & held and not services[d] <= held for d in split.excluded)
        assert split == split_by_service(labels, services, held_out_fraction=0.2, seed=seed)


def test_phase_plan_holds_out_by_service_when_it_knows_the_services():
    from agentscaler_dagster.resources import PhasePlan

    labels = {"a": "x", "b": "y", "c": "z"}
    split = PhasePlan().split(labels, {"a": {"s1"}, "b": {"s1"}, "c": {"s2"}})
    assert split.held_out_services and (split.held_out == ["a", "b"] or split.held_out == ["c"])
    assert PhasePlan(hold_out_by="domain").split(labels, {"a": {"s1"}}).held_out_services == []
    with pytest.raises(ValueError, match="hold_out_by"):
        PhasePlan(hold_out_by="planet").split(labels)
