"""impasto: paint a photo in the style of a painting (Gatys, Ecker & Bethge, CVPR 2016).

    import impasto
    result = impasto.stylize("photo.jpg", "painting.jpg", impasto.Config(max_size=512))
    result.save("out.png")
"""

__version__ = "0.4.0"

from .api import Result, objective_for, stylize
from .config import Config
from .errors import ConfigError, ImageError, ImpastoError, WeightsError
from .imageio import read_image, save_image
from .optimize import ProgressEvent

__all__ = [
    "Config", "ConfigError", "ImageError", "ImpastoError", "ProgressEvent", "Result", "WeightsError",
    "__version__", "objective_for", "read_image", "save_image", "stylize",
]
