"""Small arithmetic helpers shared by the datapaths."""

__all__ = ["tree_sum"]


def tree_sum(values):
    """Sum ``values`` as a balanced tree of adders (``sum()`` chains them one after another,
    a carry chain per term on the critical path). Amaranth widens each sum by one bit."""
    values = list(values)
    if not values:
        raise ValueError("tree_sum needs at least one value")
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]
