"""rft.graders: programmatic graders that turn (sample, item) into a structured `Grade`.

This package imports nothing else of rft and no torch (a test walks the imports).
"""

from __future__ import annotations

from . import code as _code  # noqa: F401  (registers code)
from . import json_schema as _json_schema  # noqa: F401  (registers json_schema)
from . import judge as _judge  # noqa: F401  (registers score_model, label_model)
from . import math as _math  # noqa: F401  (registers math)
from . import multi as _multi  # noqa: F401  (registers multi)
from . import python as _python  # noqa: F401  (registers python)
from . import rgym as _rgym  # noqa: F401  (registers reasoning_gym)
from . import similarity as _similarity  # noqa: F401  (registers text_similarity)
from . import string as _string  # noqa: F401  (registers string_check, regex, format)
from .base import Grader, GraderSpecError, grader_types, load_grader
from .grade import STATUSES, Grade, Status
from .pool_base import GradingPool
from .template import TemplateError, render

__all__ = [
    "Grade",
    "Status",
    "STATUSES",
    "Grader",
    "GraderSpecError",
    "GradingPool",
    "TemplateError",
    "load_grader",
    "grader_types",
    "render",
]
