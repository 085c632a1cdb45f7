"""Model registry: create_model(name, **overrides), list_models(pattern), model_info(name)."""

from yt8m_kit.models import frame_models, video_models  # noqa: F401  (registers the models)
from yt8m_kit.models.registry import DTYPES, create_model, list_models, model_info, model_inputs

__all__ = ["DTYPES", "create_model", "list_models", "model_info", "model_inputs"]
