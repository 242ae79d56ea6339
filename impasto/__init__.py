"""impasto: paint a photo in the style of a painting (Gatys, Ecker & Bethge, CVPR 2016).

    import impasto
    result = impasto.stylize("photo.jpg", "painting.jpg", impasto.Config(max_size=512))
    result.save("out.png")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.16.0"

# The public names, each from the module that defines it. They are imported on first use, so that
# the command line can answer Ctrl-C with one line even while torch is still loading.
_PUBLIC = {
    "Callback": "optimize", "Config": "config", "ConfigError": "errors", "ImageSource": "imageio", "ImageError": "errors", "ImpastoError": "errors",
    "ProgressEvent": "optimize", "Result": "result", "ResumePoint": "resume", "WeightsError": "errors",
    "objective_for": "api", "read_image": "imageio", "read_metadata": "imageio", "resume_point": "resume",
    "save_image": "imageio",
    "stylize": "api",
}
__all__ = [
    "Callback", "Config", "ConfigError", "ImageError", "ImageSource", "ImpastoError", "ProgressEvent", "Result", "ResumePoint",
    "WeightsError", "__version__", "objective_for", "read_image", "read_metadata", "resume_point", "save_image",
    "stylize",
]

if TYPE_CHECKING:
    from .api import objective_for, stylize
    from .config import Config
    from .errors import ConfigError, ImageError, ImpastoError, WeightsError
    from .imageio import ImageSource, read_image, read_metadata, save_image
    from .optimize import Callback, ProgressEvent
    from .result import Result
    from .resume import ResumePoint, resume_point


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:  # a submodule (impasto.api), imported on first use like the names
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'impasto' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
