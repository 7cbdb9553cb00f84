"""The model zoo: QuadraNet and the efficient and high-order baselines it is judged against."""

from chipfit.models._registry import ModelEntry, create_model, get_entry, list_models, register_model

__all__ = ["ModelEntry", "create_model", "get_entry", "list_models", "register_model"]
