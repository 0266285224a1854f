"""randweights: what neural networks can do without training their weight values.

The library behind the book: methods that transform ordinary torch models (Edge-Popup, the Bernoulli
supermask, Slot Machines, LaPerm, IMP), offline datasets, a results store keyed by hyperparameters, and the
papermill runner. Importing the package registers every method and architecture.
"""

from . import methods, models  # noqa: F401 (they register the methods' settings and the architectures)
from ._version import __version__
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, make_config
from .errors import ConfigError, DatasetNotFound

__all__ = ["ConfigError", "DataConfig", "DatasetNotFound", "ModelConfig", "RunConfig", "TrainConfig", "__version__",
           "make_config"]
