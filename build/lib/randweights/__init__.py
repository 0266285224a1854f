"""randweights: what neural networks can do without training their weight values.

The library behind the book: methods that transform ordinary torch models (Edge-Popup, the Bernoulli
supermask, ...), offline datasets, a results store keyed by hyperparameters, and the papermill runner.
"""

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, make_config
from .errors import ConfigError, DatasetNotFound

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataConfig", "DatasetNotFound", "ModelConfig", "RunConfig", "TrainConfig", "make_config"]
