"""Method heads (registered in `mumur.registry.HEADS`): `meanP`, `mumur-dcm`, `leccr`; the head
contract (`RetrievalHead`, `HeadInputs`) is in `base`.

Importing this package registers every head module in it; a new head is one new module here with
one `@register_head("name")` (it is picked up automatically).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import BRANCHES, HeadConfig, HeadInputs, RetrievalHead
from .dcm import DCMConfig, DCMHead
from .meanpool import MeanPoolConfig, MeanPoolHead

__all__ = [
    "BRANCHES",
    "DCMConfig",
    "DCMHead",
    "HeadConfig",
    "HeadInputs",
    "MeanPoolConfig",
    "MeanPoolHead",
    "RetrievalHead",
]

_SHARED = {"base", "temporal", "slots"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SHARED and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
