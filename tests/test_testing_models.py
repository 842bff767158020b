"""`clipaction.testing.models.build_random_model`: one entry point, every family, the folder loads
as the family it stands for."""

from __future__ import annotations

import pytest

from clipaction.models.check import check_model
from clipaction.testing.models import VARIANT_FAMILY, build_random_model


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANT_FAMILY))
def test_every_variant_builds_a_folder_that_loads_as_its_family(variant, tmp_path):
    folder = build_random_model(tmp_path / variant, variant)
    assert check_model(str(folder))["family"] == VARIANT_FAMILY[variant]


def test_a_family_name_builds_its_variant(tmp_path):
    # the siglip2 family is SigLIP 2 NaFlex: asking for the family builds that variant
    folder = build_random_model(tmp_path / "s2", "siglip2")
    assert check_model(str(folder))["family"] == "siglip2"


@pytest.mark.parametrize(
    ("variant", "options", "message"),
    [
        ("resnet", {}, "variant must be one of"),
        ("clip", {"shape": "huge"}, "shape must be one of"),
        ("siglip", {"logit_scale": 100.0}, "CLIP only"),
    ],
)
def test_bad_requests_say_what_is_allowed(variant, options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        build_random_model(tmp_path, variant, **options)
