"""`clipaction demo --family NAME`: a tiny random model of every registered family, loaded
through the same code as a hub id, as the family it claims to be."""

from __future__ import annotations

import pytest

from clipaction.config import ModelConfig
from clipaction.demo.run import build_demo_model
from clipaction.errors import ConfigError
from clipaction.models import list_backends, load_backend


@pytest.mark.parametrize("family", list_backends())
def test_every_family_has_a_demo_model_of_that_family(family, tmp_path):
    backend = load_backend(ModelConfig(name_or_path=str(build_demo_model(family, tmp_path / family)), device="cpu"))
    assert backend.family == family
    texts = backend.encode_texts(["a person running", "a person jumping"])
    assert texts.shape[0] == 2


def test_an_unknown_family_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="family: must be one of .*siglip"):
        build_demo_model("flava", tmp_path)
