"""Checks shared by every block config: each raises ``ValueError`` naming the parameter."""

from amaranth.hdl import Shape, ShapeCastable

__all__ = ["check_int", "check_power_of_two", "check_choice", "check_shape", "packet_layout"]


def check_int(name: str, value, *, min: int | None = None, max: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if min is not None and value < min:
        raise ValueError(f"{name} must be at least {min}, not {value!r}")
    if max is not None and value > max:
        raise ValueError(f"{name} must be at most {max}, not {value!r}")


def check_power_of_two(name: str, value, *, min: int = 1, max: int | None = None) -> None:
    check_int(name, value, min=min, max=max)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")


def check_shape(name: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, (Shape, ShapeCastable, int, range)):
        raise ValueError(f"{name} must be an Amaranth shape or layout, not {value!r}")
    try:
        Shape.cast(value)
    except TypeError as exc:
        raise ValueError(f"{name} must be an Amaranth shape or layout, not {value!r}") from exc


def packet_layout(data_width: int):
    """The default packet payload: ``data`` then ``first`` and ``last`` flags."""
    from amaranth.lib import data

    return data.StructLayout({"data": data_width, "first": 1, "last": 1})
