"""The CloudWatch alarm evaluator of the alarm tests: aggregation, metric math, M of N, missing data."""

from __future__ import annotations

import pytest
from cloudwatch_alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmDefinition,
    MetricMath,
    aggregate,
    resolve,
    tokenize,
)

SAMPLES = [(0, 4.0), (30, 2.0), (61, 7.0), (185, 1.0)]


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        ("Sum", {0: 6.0, 60: 7.0, 180: 1.0}),
        ("Minimum", {0: 2.0, 60: 7.0, 180: 1.0}),
        ("Maximum", {0: 4.0, 60: 7.0, 180: 1.0}),
        ("Average", {0: 3.0, 60: 7.0, 180: 1.0}),
        ("SampleCount", {0: 2.0, 60: 1.0, 180: 1.0}),
    ],
)
def test_samples_become_one_datapoint_per_period_that_has_any(statistic, expected):
    # GIVEN samples at 0, 30, 61 and 185 s WHEN aggregated per minute THEN the period 120-180 is missing
    assert aggregate(SAMPLES, 60, statistic) == expected


def math(**series):
    return MetricMath(series, periods=[0, 60, 120, 180])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("-2 + 5", 3.0),
        ("10 / 4", 2.5),
        ("2 > 1 AND 0 < 1", 1.0),
        ("2 > 1 AND 1 < 0", 0.0),
        ("2 < 1 OR 1 >= 1", 1.0),
        ("3 == 3", 1.0),
        ("3 != 3", 0.0),
        ("IF(1 > 2, 10, 20)", 20.0),
    ],
)
def test_scalar_arithmetic_follows_the_usual_precedence(expression, expected):
    assert math().evaluate(expression) == expected


def test_an_operation_on_two_series_keeps_only_the_periods_both_have():
    a = {0: 1.0, 60: 2.0, 120: 3.0}
    b = {60: 10.0, 120: 0.0, 180: 5.0}
    assert math(a=a, b=b).evaluate("a + b") == {60: 12.0, 120: 3.0}
    # a division by zero leaves that period missing
    assert math(a=a, b=b).evaluate("a / b") == {60: 0.2}
    assert math(a=a).evaluate("a * 2 > 3") == {0: 0.0, 60: 1.0, 120: 1.0}


def test_diff_fill_and_if_on_series():
    a = {0: 5.0, 60: 8.0, 180: 6.0}
    # DIFF: each datapoint minus the previous datapoint (the gap at 120 is skipped, not zero)
    assert math(a=a).evaluate("DIFF(a)") == {60: 3.0, 180: -2.0}
    # FILL: the missing periods of the evaluation grid get the value
    assert math(a=a).evaluate("FILL(a, 0)") == {0: 5.0, 60: 8.0, 120: 0.0, 180: 6.0}
    # IF per period; a branch series missing a period leaves the result missing there
    assert math(a=a).evaluate("IF(a > 5, a, 0)") == {0: 0.0, 60: 8.0, 180: 6.0}
    assert math(a=a, b={60: 1.0}).evaluate("IF(a > 5, b, 0)") == {0: 0.0, 60: 1.0}
    assert math(a=a).evaluate("IF(DIFF(a) > 0 AND a > 7, 1, 0)") == {60: 1.0, 180: 0.0}


@pytest.mark.parametrize("bad", ["a +", "FOO(a)", "unknown", "1 $ 2", "(1"])
def test_an_expression_it_cannot_evaluate_is_refused(bad):
    with pytest.raises(ValueError):
        math(a={0: 1.0}).evaluate(bad)


def test_tokens():
    assert tokenize("IF(DIFF(b)>=0,1,0)") == [
        "IF",
        "(",
        "DIFF",
        "(",
        "b",
        ")",
        ">=",
        "0",
        ",",
        "1",
        ",",
        "0",
        ")",
    ]


def simple_alarm(treat: str, evaluation_periods: int = 3, to_alarm: int = 3) -> AlarmDefinition:
    return AlarmDefinition(
        {
            "MetricName": "M",
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": evaluation_periods,
            "DatapointsToAlarm": to_alarm,
            "Threshold": 10,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": treat,
        }
    )


def minutes(*values):
    """One sample per minute (None: no sample that minute), the last minute ending at 300 s."""
    start = 300 - 60 * len(values)
    return {"M": [(start + 60 * index + 1, value) for index, value in enumerate(values) if value is not None]}


@pytest.mark.parametrize(
    ("values", "treat", "expected"),
    [
        ((20, 20, 20), "notBreaching", ALARM),
        ((20, 5, 20), "notBreaching", OK),
        ((20, None, 20), "notBreaching", OK),
        ((20, None, 20), "breaching", ALARM),
        ((20, None, 20), "missing", OK),
        ((None, None, None), "breaching", ALARM),
        ((None, None, None), "notBreaching", OK),
        ((None, None, None), "missing", INSUFFICIENT_DATA),
        ((5, 5, 5), "breaching", OK),
    ],
)
def test_three_of_three_with_each_treatment_of_missing_data(values, treat, expected):
    # GIVEN a 3-of-3 alarm on the last three complete minutes WHEN evaluated at 300 s
    assert simple_alarm(treat).state_at(300, minutes(*values)) == expected


def test_ignore_keeps_the_previous_state_when_every_datapoint_is_missing():
    alarm = simple_alarm("ignore")
    assert alarm.state_at(300, minutes(None, None, None), previous=ALARM) == ALARM
    assert alarm.state_at(300, minutes(None, None, None), previous=OK) == OK


def test_m_of_n_and_only_complete_periods_count():
    alarm = simple_alarm("notBreaching", evaluation_periods=3, to_alarm=2)
    assert alarm.state_at(300, minutes(20, 5, 20)) == ALARM
    assert alarm.state_at(300, minutes(20, 5, 5)) == OK
    # a sample in the running minute (300-360 s) is not evaluated before that minute completes
    samples = {"M": [(301, 50.0), (302, 50.0)]}
    assert alarm.state_at(330, samples) == OK
    assert alarm.state_at(420, samples) == OK  # one breaching minute of the three
    assert alarm.state_at(420, {"M": [(241, 50.0), (301, 50.0)]}) == ALARM


def test_a_metric_math_alarm_returns_its_expression_and_diff_sees_the_period_before_the_window():
    alarm = AlarmDefinition(
        {
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 2,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "Metrics": [
                {
                    "Id": "m",
                    "ReturnData": False,
                    "MetricStat": {"Metric": {"MetricName": "M"}, "Period": 60, "Stat": "Minimum"},
                },
                {"Id": "up", "ReturnData": True, "Expression": "IF(DIFF(m) > 0, 1, 0)"},
            ],
        }
    )
    # rising over the last two minutes, relative to the minute before them
    assert alarm.state_at(300, minutes(1, 2, 3)) == ALARM
    assert alarm.state_at(300, minutes(3, 2, 3)) == OK


def test_template_parameters_are_resolved_to_their_defaults():
    parameters = {"Limit": {"Default": 15}, "Stage": {"Default": "dev"}}
    value = {"Threshold": {"Ref": "Limit"}, "Expression": {"Fn::Sub": "m > ${Limit} AND ${AWS::Region}"}}
    assert resolve(value, parameters) == {"Threshold": 15, "Expression": "m > 15 AND ${AWS::Region}"}
