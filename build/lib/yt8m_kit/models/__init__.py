"""Stage: models. configs (every registered model's architecture and trainer settings, as data),
frame_models and video_models (the builders), registry (the door: create_model, list_models,
model_info). Layers they are built from: yt8m_kit.layers."""

from yt8m_kit.models.registry import (DTYPES, create_model, explicit_overrides, list_models, model_info, model_inputs,
                                     saved_overrides)

__all__ = ["DTYPES", "create_model", "explicit_overrides", "list_models", "model_info", "model_inputs",
           "saved_overrides"]
