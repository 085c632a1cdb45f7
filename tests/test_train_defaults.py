"""The trainer takes a model's registered training settings where the command line is silent."""

import pytest

from yt8m_kit.errors import ConfigError
from yt8m_kit.models import model_info
from yt8m_kit.train.config import TrainConfig, resolve_tunables


def _given(**kw):
    base = dict.fromkeys(("steps", "epochs", "batch_size", "lr", "lr_decay", "lr_decay_examples", "clip_norm"))
    base.update(kw)
    return base


def test_video_model_trains_with_no_options():
    registered = model_info("video")["train"]
    assert registered.get("epochs") or registered.get("steps"), "the tuned video model must say how long to train"
    chosen = resolve_tunables("video", _given())
    for key, value in registered.items():
        assert chosen[key] == value


def test_command_line_wins_over_registered():
    chosen = resolve_tunables("video", _given(steps=7, lr=0.5))
    assert chosen["steps"] == 7 and "epochs" not in chosen  # --steps replaces the registered epochs
    assert chosen["lr"] == 0.5


def test_model_without_registered_length_needs_steps():
    assert "steps" not in model_info("lfnl_netvlad_tiny")["train"]
    with pytest.raises(ConfigError, match="--steps N or --epochs N"):
        resolve_tunables("lfnl_netvlad_tiny", _given())
    chosen = resolve_tunables("lfnl_netvlad", _given(steps=3))
    config = TrainConfig(model="lfnl_netvlad", train="x", out="y", **chosen)
    assert (config.steps, config.lr, config.batch_size) == (3, 2e-4, 64)  # the paper's lr by default


def test_tiny_variants_carry_their_own_learning_rate():
    chosen = resolve_tunables("gru_tiny", _given(steps=3))
    assert chosen["lr"] == model_info("gru_tiny")["train"]["lr"] > 2e-4


def test_xla_follows_the_model_unless_told():
    from yt8m_kit.train.config import resolve_xla

    assert model_info("lfnl_netvlad")["train"]["xla"] is True  # measured ~2x at paper size
    assert resolve_xla("lfnl_netvlad", None, "default") is True
    assert resolve_xla("lfnl_netvlad", None, "mirrored") is False  # XLA is for the default strategy
    assert resolve_xla("lfnl_netvlad", False, "default") is False  # --no-xla wins
    assert resolve_xla("lfnl_netvlad_tiny", None, "default") is False
    assert resolve_xla("soft_bof_8k", None, "default") is True  # measured ~1.13x at paper size
    assert resolve_xla("gru", None, "default") is False  # measured slower compiled
    assert resolve_xla("gru_tiny", True, "default") is True
