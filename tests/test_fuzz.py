"""Hypothesis fuzz of what users hand stepline: no exception reaches training, the logbook stays readable and
whole, and nothing is written outside the logbook folder."""

from __future__ import annotations

import decimal
import fractions
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stepline
from stepline import Logbook

pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

huge_ints = st.integers(min_value=-(10**400), max_value=10**400)
numbers = st.one_of(
    huge_ints, st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.fractions(), st.decimals(allow_nan=True), st.just(fractions.Fraction(10**400)),
    st.builds(np.longdouble, st.floats(allow_nan=True)), st.builds(np.float16, st.floats(width=16)),
    st.builds(np.int64, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(np.uint64, st.integers(min_value=0, max_value=2**64 - 1)),
)
anything = st.one_of(numbers, st.text(), st.none(), st.lists(st.integers(), max_size=3), st.binary(max_size=8))
# Text with lone surrogates, as os.fsdecode gives for file names that are not UTF-8.
text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)


@pytest.fixture
def run(logdir):
    opened = stepline.init(project="fuzz", dir=logdir)
    yield opened
    opened.finish()


def quietly(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a refused value warns; that is the point, not a failure
        call()


def nothing_outside(logdir) -> None:
    root = logdir.resolve()
    assert all(path.resolve().is_relative_to(root) for path in logdir.rglob("*"))


@FUZZ
@given(values=st.dictionaries(st.one_of(text, st.integers()), anything, max_size=4),
       step=st.one_of(st.none(), huge_ints, st.floats(), st.fractions()),
       epoch=st.one_of(st.none(), numbers))
def test_log_never_raises_and_the_run_stays_whole(run, logdir, values, step, epoch):
    quietly(lambda: run.log(values, step=step, epoch=epoch))
    quietly(lambda: run.log({"marker": 1.0}))
    assert run.flush(timeout=30)
    nothing_outside(logdir)


@FUZZ
@given(params=st.recursive(st.one_of(anything, text), lambda children: st.dictionaries(text, children, max_size=3)
                           | st.lists(children, max_size=3), max_leaves=12),
       message=text, context=st.dictionaries(st.text(max_size=8).filter(str.isidentifier), anything, max_size=3))
def test_params_and_log_lines_never_raise(run, logdir, params, message, context):
    quietly(lambda: run.params.set(cfg=params))
    quietly(lambda: run.info(message, **context))
    quietly(lambda: run.log({"marker": 1.0}))
    assert run.flush(timeout=30)
    nothing_outside(logdir)


def test_a_thousand_deep_config_and_the_values_the_probe_found(run, logdir):
    deep: dict = {}
    for _ in range(1000):
        deep = {"a": deep}
    for call in (lambda: run.params.set(cfg=deep), lambda: run.log({"x": fractions.Fraction(10**400)}),
                 lambda: run.log({"x": 1.0}, epoch=fractions.Fraction(10**400)), lambda: run.log({"x": 10**400}),
                 lambda: run.log({"x": 1.0}, step=2**64), lambda: run.log({"x": 1.0}, epoch=2**64),
                 lambda: run.log({"x": np.longdouble(1.5)}), lambda: run.log({"k\udc80": 1.0}),
                 lambda: run.info("m\udc80", where="c\udc80"), lambda: run.params.set(path="bad\udcff"),
                 lambda: run.log({"x": decimal.Decimal("NaN")}), lambda: run.log({"x": 2.0}, epoch=math.nan)):
        quietly(call)
    run.log({"marker": 1.0})
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert view.status == "finished" and view.series("marker").values == [1.0]
    assert 1.5 in view.series("x").values and 10**400 not in view.series("x").values  # a long double, as a float
    assert math.isnan(view.series("x").epochs[-1])  # a NaN epoch reads back as NaN, not None
    assert "k\\udc80" in view.metric_keys() and view.params()["path"] == "bad\\udcff"


@FUZZ
@given(project=text, name=text)
def test_names_are_refused_clearly_or_kept_and_never_escape(logdir, project, name):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opened = stepline.init(project=project, name=name, dir=logdir)
    except stepline.InvalidNameError:
        pass
    else:
        opened.finish()
        assert Logbook(logdir).run(opened.id, project=project).name == name
    nothing_outside(logdir)
