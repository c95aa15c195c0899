"""Ready models built from nn: the language model the CLI trains."""
from .language_model import LanguageModel
from .trainer import TrainConfig, Trainer, TrainingError, evaluate_file, load_model

__all__ = ["LanguageModel", "TrainConfig", "Trainer", "TrainingError", "evaluate_file", "load_model"]
