"""A small evaluator of CloudWatch alarm semantics, to test the templates' alarms on recorded metric series.

What it models (the parts the stream's alarms use):
  - datapoints: raw samples (epoch s, value) aggregated per period (start aligned to a multiple of
    the period) by Sum, Minimum, Maximum, Average or SampleCount; a period without a sample is missing;
  - metric math: numbers, metric ids, + - * /, comparisons (1 or 0), AND, OR, parentheses,
    IF(condition, a, b), FILL(m, value) and DIFF(m) (each datapoint minus the previous datapoint);
    an operation on two series keeps the periods both have; a division by zero is missing;
  - evaluation at a moment: the last EvaluationPeriods complete periods; the alarm is ALARM when at
    least DatapointsToAlarm of them breach, after TreatMissingData: `breaching` / `notBreaching` fill
    the missing periods; `missing` and `ignore` judge the present ones only, and with none present
    give INSUFFICIENT_DATA or keep the previous state.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

Series = dict[int, float]
Value = Series | float

ALARM = "ALARM"
OK = "OK"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Minimum": min,
    "Maximum": max,
    "Average": lambda values: sum(values) / len(values),
    "SampleCount": lambda values: float(len(values)),
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def aggregate(samples: Iterable[tuple[float, float]], period: int, statistic: str) -> Series:
    """One datapoint per period that holds samples: {period start: statistic of its samples}."""
    buckets: dict[int, list[float]] = {}
    for moment, value in samples:
        buckets.setdefault(int(moment // period) * period, []).append(value)
    return {start: STATISTICS[statistic](values) for start, values in sorted(buckets.items())}


# --- Metric math ---------------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(>=|<=|==|!=|[-+*/(),<>]))")
BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: None if b == 0 else a / b,
    ">": lambda a, b: float(a > b),
    "<": lambda a, b: float(a < b),
    ">=": lambda a, b: float(a >= b),
    "<=": lambda a, b: float(a <= b),
    "==": lambda a, b: float(a == b),
    "!=": lambda a, b: float(a != b),
    "AND": lambda a, b: float(bool(a) and bool(b)),
    "OR": lambda a, b: float(bool(a) or bool(b)),
}


def tokenize(expression: str) -> list[str]:
    tokens, position = [], 0
    text = expression.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot parse {text[position:]!r} in {expression!r}")
        tokens.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tokens


def combine(op: str, left: Value, right: Value) -> Value:
    """A binary operation on numbers or series, keeping only the periods both series have."""
    function = BINARY[op]
    if isinstance(left, dict) or isinstance(right, dict):
        periods = [
            start
            for start in (left if isinstance(left, dict) else right)
            if not isinstance(left, dict) or not isinstance(right, dict) or start in right
        ]
        pairs = {
            start: (
                left[start] if isinstance(left, dict) else left,
                right[start] if isinstance(right, dict) else right,
            )
            for start in periods
        }
        results = {start: function(a, b) for start, (a, b) in pairs.items()}
        return {start: value for start, value in sorted(results.items()) if value is not None}
    result = function(left, right)
    if result is None:
        raise ZeroDivisionError("division by zero in a scalar expression")
    return result


@dataclass
class MetricMath:
    """Evaluates one expression over named series; `periods` is the grid FILL fills."""

    series: dict[str, Series]
    periods: list[int]

    def evaluate(self, expression: str) -> Value:
        self._tokens = tokenize(expression)
        self._next = 0
        value = self._or()
        if self._next != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._next]!r} in {expression!r}")
        return value

    def _peek(self) -> str | None:
        return self._tokens[self._next] if self._next < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected or 'a token'}, got {token!r}")
        self._next += 1
        return token

    def _binary(self, operators: tuple[str, ...], operand: Callable[[], Value]) -> Value:
        value = operand()
        while self._peek() in operators:
            value = combine(self._take(), value, operand())
        return value

    def _or(self) -> Value:
        return self._binary(("OR",), self._and)

    def _and(self) -> Value:
        return self._binary(("AND",), self._comparison)

    def _comparison(self) -> Value:
        return self._binary((">", "<", ">=", "<=", "==", "!="), self._sum)

    def _sum(self) -> Value:
        return self._binary(("+", "-"), self._product)

    def _product(self) -> Value:
        return self._binary(("*", "/"), self._unary)

    def _unary(self) -> Value:
        if self._peek() == "-":
            self._take()
            return combine("-", 0.0, self._unary())
        return self._primary()

    def _primary(self) -> Value:
        token = self._take()
        if token == "(":
            value = self._or()
            self._take(")")
            return value
        if re.fullmatch(r"\d+(\.\d+)?", token):
            return float(token)
        if self._peek() == "(":
            return self._function(token)
        if token not in self.series:
            raise ValueError(f"unknown metric id {token!r}")
        return self.series[token]

    def _function(self, name: str) -> Value:
        self._take("(")
        arguments = [self._or()]
        while self._peek() == ",":
            self._take()
            arguments.append(self._or())
        self._take(")")
        functions = {"IF": if_, "DIFF": diff, "FILL": lambda series, value: fill(series, value, self.periods)}
        if name not in functions:
            raise ValueError(f"unsupported function {name}")
        return functions[name](*arguments)


def if_(condition: Value, when_true: Value, when_false: Value) -> Value:
    """IF(condition, a, b) per period of the condition; a branch missing in a period leaves it missing."""
    if not isinstance(condition, dict):
        return when_true if condition else when_false
    result = {}
    for start, test in condition.items():
        branch = when_true if test else when_false
        if isinstance(branch, dict):
            if start in branch:
                result[start] = branch[start]
        else:
            result[start] = branch
    return result


def diff(series: Value) -> Series:
    """Each datapoint minus the previous datapoint (the first one has none)."""
    if not isinstance(series, dict):
        raise ValueError("DIFF needs a time series")
    ordered = sorted(series.items())
    return {start: value - previous for (_, previous), (start, value) in pairwise(ordered)}


def fill(series: Value, value: Value, periods: list[int]) -> Series:
    if not isinstance(series, dict) or isinstance(value, dict):
        raise ValueError("FILL needs a time series and a number")
    return {start: series.get(start, value) for start in periods}


# --- Alarms --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmDefinition:
    """The evaluation-relevant properties of an AWS::CloudWatch::Alarm, parameters resolved."""

    properties: dict[str, Any]

    @property
    def period(self) -> int:
        if "Period" in self.properties:
            return int(self.properties["Period"])
        return int(
            next(
                query["MetricStat"]["Period"] for query in self.properties["Metrics"] if "MetricStat" in query
            )
        )

    def datapoints(self, samples: dict[str, list[tuple[float, float]]], periods: list[int]) -> Series:
        """The alarm's datapoints: its metric aggregated, or its returned metric-math expression."""
        props = self.properties
        if "MetricName" in props:
            return aggregate(samples.get(props["MetricName"], []), self.period, props["Statistic"])
        named = {}
        for query in props["Metrics"]:
            if "MetricStat" in query:
                stat = query["MetricStat"]
                named[query["Id"]] = aggregate(
                    samples.get(stat["Metric"]["MetricName"], []), int(stat["Period"]), stat["Stat"]
                )
        math = MetricMath(named, periods)
        for query in props["Metrics"]:
            if "Expression" in query:
                named[query["Id"]] = math.evaluate(query["Expression"])
        returned = next(query["Id"] for query in props["Metrics"] if query.get("ReturnData", True))
        value = named[returned]
        return value if isinstance(value, dict) else dict.fromkeys(periods, value)

    def state_at(
        self, moment: float, samples: dict[str, list[tuple[float, float]]], previous: str = OK
    ) -> str:
        """The alarm's state when evaluated at `moment` (epoch s) on the samples recorded until then."""
        props = self.properties
        period = self.period
        evaluation_periods = int(props["EvaluationPeriods"])
        to_alarm = int(props.get("DatapointsToAlarm", evaluation_periods))
        last_complete = int(moment // period) * period - period
        # Older periods too, so DIFF has the datapoint before the first evaluated one.
        grid = [last_complete - period * back for back in range(evaluation_periods + 1, -1, -1)]
        seen = {
            name: [(t, v) for t, v in points if t < last_complete + period]
            for name, points in samples.items()
        }
        values = self.datapoints(seen, grid)
        window = [values.get(start) for start in grid[-evaluation_periods:]]
        compare = COMPARISONS[props["ComparisonOperator"]]
        threshold = float(props["Threshold"])
        breaches = [value is not None and compare(value, threshold) for value in window]
        missing = window.count(None)
        treatment = props.get("TreatMissingData", "missing")
        if treatment == "breaching":
            breaching = sum(breaches) + missing
        elif treatment == "notBreaching" or missing < len(window):
            breaching = sum(breaches)
        elif treatment == "ignore":
            return previous
        else:
            return INSUFFICIENT_DATA
        return ALARM if breaching >= to_alarm else OK

    def timeline(
        self, samples: dict[str, list[tuple[float, float]]], start: float, end: float, step: float = 60.0
    ) -> list[tuple[float, str]]:
        """(moment, state) every `step` seconds, as CloudWatch re-evaluates an alarm every minute."""
        states, state, moment = [], OK, start
        while moment <= end:
            state = self.state_at(moment, samples, state)
            states.append((moment, state))
            moment += step
        return states


def resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """A template value, each Ref to a parameter and each ${Parameter} of a Sub replaced by its default."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]["Default"]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(
            r"\$\{([A-Za-z0-9]+)\}",
            lambda match: (
                str(parameters[match.group(1)]["Default"]) if match.group(1) in parameters else match.group(0)
            ),
            value["Fn::Sub"],
        )
    if isinstance(value, dict):
        return {key: resolve(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, parameters) for item in value]
    return value


def alarm_from_template(template: dict[str, Any], logical_id: str) -> AlarmDefinition:
    """An alarm of a loaded template, its parameters taken at their defaults."""
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::CloudWatch::Alarm", logical_id
    return AlarmDefinition(resolve(resource["Properties"], template.get("Parameters", {})))
