"""plip.utils.config.build_dataclass: the one typed-config coercer (models and training).

Oracle: the dataclass definitions (types and defaults) and the mapping given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from plip.errors import ConfigError
from plip.models.config import VisionConfig
from plip.utils.config import build_dataclass, present_keys


@dataclass
class Inner:
    size: tuple[int, int] = (2, 3)
    rate: float = 0.5


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)


def test_builds_the_tree_with_types_and_defaults():
    cfg = build_dataclass(Outer, {"inner": {"size": [4, 5], "rate": 1}, "tags": ["a"]})
    assert cfg == Outer(name="x", inner=Inner(size=(4, 5), rate=1.0), tags=["a"])
    assert isinstance(cfg.inner.rate, float) and isinstance(cfg.inner.size, tuple)
    assert build_dataclass(VisionConfig, {"layers": [1, 1, 1, 1]}).layers == (1, 1, 1, 1)


@pytest.mark.parametrize("data, message", [
    ({"inner": {"sise": [1, 2]}}, r"unknown config key 'inner\.sise' \(in f\.json\); did you mean 'inner\.size'"),
    ({"inner": {"size": [1]}}, r"config key 'inner\.size' expects list of 2 \(int, int\), got \[1\].*\(in f\.json\)"),
    ({"inner": {"rate": True}}, r"config key 'inner\.rate' expects float"),
    ({"inner": 3}, r"config key 'inner' expects mapping"),
])
def test_errors_name_the_key_path_and_the_file(data, message):
    with pytest.raises(ConfigError, match=message):
        build_dataclass(Outer, data, source="f.json")


def test_absent_keys_can_be_required_although_they_have_defaults():
    data = {"inner": {"rate": 2.0}}
    assert present_keys(data) == {"inner", "inner.rate"}
    assert build_dataclass(Outer, data, require=["inner.rate"]).inner.rate == 2.0
    with pytest.raises(ConfigError, match=r"config key 'inner\.size' is required \(in r\.yaml\)"):
        build_dataclass(Outer, data, source="r.yaml", require=["inner.size"])


def test_prefix_places_a_section_inside_its_file():
    with pytest.raises(ConfigError, match=r"unknown config key 'vision\.widht' \(in m/config\.json\)"):
        build_dataclass(VisionConfig, {"widht": 8}, source="m/config.json", prefix="vision.")
