"""Numbers as TFMOT takes them: numpy scalars and integral floats too.

TFMOT's guides compute step counts with numpy (`np.ceil(n / batch)
.astype(np.int32) * epochs`) and pass them on; TFMOT takes them, and so
does kcompress. Values are stored as Python numbers, so configs stay JSON.
"""

import numbers

__all__ = ["as_int", "as_real"]


def as_int(value):
    """`value` as a Python int where it is an integer: an int, a numpy
    integer, or a float with no fractional part (`2.0`, as TFMOT takes);
    None otherwise, booleans included.

    >>> import numpy as np
    >>> as_int(np.int32(22)), as_int(3.0), as_int(2.5), as_int(True)
    (22, 3, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return int(value) if float(value).is_integer() else None


def as_real(value):
    """`value` as a Python float where it is a real number (int, float or
    a numpy scalar); None otherwise, booleans included."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)
