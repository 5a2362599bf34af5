"""Exact money: parsing and quantising amounts to an asset's scale.

Every amount in the engine is a `Decimal` with exactly the asset's number of decimal
places. Inputs with more precision than the asset has are rejected, never rounded;
computed amounts (fees) are rounded explicitly, in the operator's favour.
"""

from __future__ import annotations

import decimal
from decimal import ROUND_UP, Decimal, InvalidOperation

MAX_DECIMALS = 18  # the Avro wire type is decimal(38, 18)
MAX_AMOUNT = Decimal(10) ** 20  # 38 digits of precision minus 18 decimals

# Decimal's default precision is 28 significant digits: an amount of an 18-decimal token
# above 10^10 has more, and arithmetic on it would round silently (quantizing it raised).
# Every amount fits 38 digits and sums of them stay far below 60: with this, adding and
# subtracting amounts is exact in every thread (new threads copy DefaultContext).
MONEY_PRECISION = 60
decimal.DefaultContext.prec = MONEY_PRECISION
decimal.getcontext().prec = MONEY_PRECISION


class AmountError(ValueError):
    """An amount that cannot be represented exactly for its asset."""


def parse_amount(text: object) -> Decimal:
    """A decimal from a string or Decimal; floats are refused (they are not exact)."""
    if isinstance(text, float):
        raise AmountError("amounts must be decimal strings, not floats")
    if isinstance(text, Decimal):
        value = text
    elif isinstance(text, (str, int)):
        try:
            value = Decimal(str(text).strip())
        except InvalidOperation:
            raise AmountError(f"not a decimal number: {text!r}") from None
    else:
        raise AmountError(f"not a decimal number: {text!r}")
    if not value.is_finite():
        raise AmountError(f"not a finite number: {text!r}")
    return value


def scale_unit(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def quantize_exact(value: Decimal, decimals: int) -> Decimal:
    """`value` with exactly `decimals` places; raises if that would lose precision."""
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
