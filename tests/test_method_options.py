"""Every built-in method refuses numeric options that make no sense (issue 25, #11).

``grasp --method-arg temperature=inf`` used to be accepted: every score came out equal, layers
collapsed, and the run finished. Each method now checks its options in ``__post_init__``, so a
nonsense value is a ConfigError naming the option, the method and the value, before any work.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from pai_bench.errors import ConfigError
from pai_bench.methods import METHODS, make_method

BUILTIN = ("pai_bench.methods", "pai_bench.baselines")  # plugins registered by tests excluded
# (method, option): a value at which the option is meaningful although it is not > 0
ZERO_ALLOWED = {("prospr", "steps")}  # 0 inner steps is SNIP


def numeric_options() -> list[tuple[str, str, type]]:
    """(method, option, int or float) for every numeric option of every built-in method."""
    found = []
    for name, cls in METHODS.items():
        if not cls.__module__.startswith(BUILTIN) or not dataclasses.is_dataclass(cls):
            continue
        for f in dataclasses.fields(cls):
            kind = type(f.default)
            if f.metadata.get("option", True) and kind in (int, float):  # bool is not numeric
                found.append((name, f.name, kind))
    return found


OPTIONS = numeric_options()


def test_the_methods_have_numeric_options_to_check():
    names = {(m, o) for m, o, _ in OPTIONS}
    assert {("grasp", "temperature"), ("snip", "samples_per_class"), ("ntk_sap", "epsilon"),
            ("prospr", "steps"), ("phew", "max_steps"), ("imp", "fraction")} <= names


def bad_values(method: str, option: str, kind: type) -> list:
    values = [math.nan, math.inf, -math.inf, -1, -0.5]
    if (method, option) not in ZERO_ALLOWED:
        values.append(0)
    if kind is int:
        values.append(2.5)  # a count is a whole number
    return values


@pytest.mark.parametrize("method, option, kind", OPTIONS, ids=[f"{m}.{o}" for m, o, _ in OPTIONS])
def test_nonsense_numeric_options_are_refused(method, option, kind):
    cls = METHODS.get(method)
    for value in bad_values(method, option, kind):
        with pytest.raises(ConfigError, match=rf"'{option}'.*'{method}'") as error:
            cls(**{option: value})
        assert repr(value) in str(error.value) or str(value) in str(error.value)
    for text in ("nan", "inf", "-inf", "-1"):  # as --method-arg gives them
        with pytest.raises(ConfigError, match=rf"'{option}'.*'{method}'"):
            make_method(method, {option: text})
    cls()  # the default is valid


def test_grasp_temperature_inf_is_refused_naming_option_method_and_value():
    with pytest.raises(ConfigError) as error:
        make_method("grasp", {"temperature": "inf"})
    message = str(error.value)
    assert "'temperature'" in message and "'grasp'" in message and "inf" in message
