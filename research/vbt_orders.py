"""vectorbt flexible order function replaying the execution kernel's orders (research only)."""

from __future__ import annotations

from numba import njit
from vectorbt.portfolio.enums import Direction, SizeType
from vectorbt.portfolio.nb import order_nb, order_nothing_nb


@njit(cache=True)
def order_func_nb(c, starts, counts, size, price, fee_rate, fixed_fee):
    """Emit bar c.i's orders one call at a time; (-1, nothing) ends the bar."""
    if c.call_idx < counts[c.i]:
        j = starts[c.i] + c.call_idx
        return 0, order_nb(
            size=size[j],
            price=price[j],
            size_type=SizeType.Amount,
            direction=Direction.Both,
            fees=fee_rate[j],
            fixed_fees=fixed_fee[j],
        )
    return -1, order_nothing_nb()

