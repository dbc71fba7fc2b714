"""Which of the export's two candidates the app gets, and when the float one is converted at all."""

from __future__ import annotations

import math

import pytest

from fruits_classifier.app_model import QUANTISATION_TOLERANCE, pick_candidate


def picked(quantised_agreement: float, float_agreement: float, checked: bool = True):
    converted = []

    def convert_float() -> bytes:
        converted.append("float")
        return b"float"

    def agree(model: bytes) -> float:
        return {b"int8": quantised_agreement, b"float": float_agreement}[model]

    return pick_candidate(b"int8", agree, convert_float, checked), converted


def test_a_quantised_model_agreeing_on_every_image_is_kept_without_converting_the_float_one():
    (data, quantised, agreements), converted = picked(1.0, 1.0)
    assert (data, quantised, agreements, converted) == (b"int8", True, {True: 1.0}, [])
    # within the tolerance of every image, the float model could not win either
    (data, _, _), converted = picked(1.0 - QUANTISATION_TOLERANCE / 2, 1.0)
    assert (data, converted) == (b"int8", [])


@pytest.mark.parametrize(
    ("quantised_agreement", "float_agreement", "kept"),
    [
        (0.95, 0.953, b"int8"),  # float better by less than the tolerance: the smaller model
        (0.95, 0.95, b"int8"),
        (0.97, 0.95, b"int8"),
        (0.95, 0.96, b"float"),  # float better by more than the tolerance
    ],
)
def test_otherwise_the_float_model_is_converted_and_kept_only_when_it_agrees_clearly_better(
    quantised_agreement, float_agreement, kept
):
    (data, quantised, agreements), converted = picked(quantised_agreement, float_agreement)
    assert converted == ["float"]
    assert (data, quantised) == (kept, kept == b"int8")
    assert agreements == {True: quantised_agreement, False: float_agreement}


def test_with_no_held_out_image_the_quantised_model_is_kept_unmeasured():
    (data, quantised, agreements), converted = picked(0.0, 1.0, checked=False)
    assert (data, quantised, converted) == (b"int8", True, [])
    assert math.isnan(agreements[True]) and False not in agreements
