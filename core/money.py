"""Exact money: the one amount parser, and quantising amounts to an asset's scale.

Every amount in the engine is a `Decimal` with exactly the asset's number of decimal
places. `parse_amount` is the only way text becomes an amount, whatever the entry point
(HTTP, CLI, camt files, bank JSON, chain observations, configuration): plain ASCII
decimal notation only (no exponent, no sign unless allowed, no digit separators, no
Unicode digits), at most `MAX_INTEGER_DIGITS` digits before the point and `MAX_DECIMALS`
after it, so no input can make arithmetic inexact, slow or raise an unexpected error.
Inputs with more precision than the asset has are rejected, never rounded; computed
amounts (fees) are rounded explicitly, in the operator's favour.
"""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_UP, Decimal

MAX_DECIMALS = 18  # the Avro wire type is decimal(38, 18)
MAX_INTEGER_DIGITS = 20  # 38 digits of precision minus 18 decimals
MAX_AMOUNT = Decimal(10) ** MAX_INTEGER_DIGITS

# Decimal's default precision is 28 significant digits: an amount of an 18-decimal token
# above 10^10 has more, and arithmetic on it would round silently (quantizing it raised).
# Every amount fits 38 digits and sums of them stay far below 60: with this, adding and
# subtracting amounts is exact in every thread (new threads copy DefaultContext).
MONEY_PRECISION = 60
decimal.DefaultContext.prec = MONEY_PRECISION
decimal.getcontext().prec = MONEY_PRECISION

# [0-9], not \d: \d also matches other scripts' digits ("١٢٣")
AMOUNT_TEXT = re.compile(
    rf"(?P<sign>[+-]?)(?:[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{0,{MAX_DECIMALS}}})?"
    rf"|\.[0-9]{{1,{MAX_DECIMALS}}})"
)
MAX_AMOUNT_TEXT = 2 + MAX_INTEGER_DIGITS + MAX_DECIMALS  # sign, point, digits


class AmountError(ValueError):
    """An amount that cannot be represented exactly for its asset."""


def parse_amount(value: object, *, signed: bool = False) -> Decimal:
    """A decimal from text, an int or a Decimal, within the wire's range; never a float.

    Negative values are refused unless `signed` (a statement balance may be negative).
    """
    if isinstance(value, (bool, float)):
        raise AmountError("amounts must be decimal strings, not floats or booleans")
    if isinstance(value, Decimal):
        amount = value
        if not amount.is_finite():
            raise AmountError(f"not a finite number: {value!r}")
        if amount != 0 and amount.adjusted() >= MAX_INTEGER_DIGITS:
            raise AmountError(f"{value} is out of range (at most {MAX_INTEGER_DIGITS} digits)")
        if amount.as_tuple().exponent < -MAX_DECIMALS and amount != amount.quantize(
            scale_unit(MAX_DECIMALS)
        ):
            raise AmountError(f"{value} has more than {MAX_DECIMALS} decimal places")
    elif isinstance(value, int):
        if abs(value) >= MAX_AMOUNT:
            raise AmountError(f"out of range (at most {MAX_INTEGER_DIGITS} digits)")
        amount = Decimal(value)
    elif isinstance(value, str):
        if len(value) > MAX_AMOUNT_TEXT or (match := AMOUNT_TEXT.fullmatch(value)) is None:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise AmountError(
                f"not a decimal amount: {shown!r} (digits 0-9 and one optional point; "
                f"at most {MAX_INTEGER_DIGITS} digits before it and {MAX_DECIMALS} after)"
            )
        amount = Decimal(value)
        if match.group("sign") == "+":
            raise AmountError(f"not a decimal amount: {value!r} (no '+' sign)")
    else:
        raise AmountError(f"not a decimal number: {type(value).__name__}")
    if amount < 0 and not signed:
        raise AmountError(f"must not be negative: {value}")
    return amount


def scale_unit(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def quantize_exact(value: Decimal, decimals: int) -> Decimal:
    """`value` with exactly `decimals` places; raises if that would lose precision."""
    if not value.is_finite() or (value != 0 and value.adjusted() >= MAX_INTEGER_DIGITS):
        raise AmountError(f"{value} is out of range")
    quantized = value.quantize(scale_unit(decimals))
    if quantized != value:
        raise AmountError(f"{value} has more than {decimals} decimal places")
    if abs(quantized) >= MAX_AMOUNT:
        raise AmountError(f"{value} is out of range")
    return quantized


def quantize_up(value: Decimal, decimals: int) -> Decimal:
    """Round a computed amount (a fee) up to the asset's scale."""
    return value.quantize(scale_unit(decimals), rounding=ROUND_UP)


def from_wire(value: Decimal, decimals: int) -> Decimal:
    """An amount read from the wire, back at its asset's scale (exact or an error)."""
    return quantize_exact(value, decimals)
