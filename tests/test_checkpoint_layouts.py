"""The checkpoint layout table covers every hub id of the catalog, each row says where its facts
come from, and the class names a folder may save load as the row's classes."""

from __future__ import annotations

import pytest

from clipaction.models import list_backends
from clipaction.models.catalog import families
from clipaction.models.checkpoint_layouts import DIMENSION_KEYS, LAYOUTS, layout_for
from clipaction.models.processor_files import canonical_class, processor_input_side


def test_every_catalog_checkpoint_has_one_layout_of_its_family():
    catalog = {model.hub_id: entry.family for entry in families() for model in entry.models}
    rows = [layout.hub_id for layout in LAYOUTS]
    assert len(rows) == len(set(rows))
    assert set(rows) == set(catalog)
    for layout in LAYOUTS:
        assert layout.family == catalog[layout.hub_id] and layout.family in list_backends()
        assert len(layout.source) > 40, f"{layout.hub_id}: say where the facts come from"
        assert (layout.image_processor_class is None) != (layout.video_processor_class is None)


def test_the_builders_stand_for_catalog_checkpoints():
    from clipaction.testing import tiny_clip as tiny
    from clipaction.testing import tiny_families, tiny_video

    assert set(tiny_families.HUB_LAYOUTS) == set(tiny_families.TINY_VARIANTS)
    for hub_id in [tiny.HUB_LAYOUT, *tiny_families.HUB_LAYOUTS.values(), *tiny_video.HUB_LAYOUTS.values()]:
        layout_for(hub_id)  # a KeyError fails the test
    with pytest.raises(KeyError, match="known"):
        layout_for("someone/unknown")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.hub_id)
def test_shrinking_changes_dimensions_only(layout):
    small = layout.shrunk(8, **({"patch_size": 4} if "patch_size" in layout.preprocessing else {}))
    assert set(small) == set(layout.preprocessing)
    for key, value in layout.preprocessing.items():
        if key not in DIMENSION_KEYS:
            assert small[key] == value
        elif isinstance(value, dict):
            assert set(small[key]) == set(value) and set(small[key].values()) == {8}
    assert layout.preprocessing.get("size") != {"shortest_edge": 8}  # the row itself is untouched
    with pytest.raises(ValueError, match="only dimensions"):
        layout.shrunk(8, resample=0)


@pytest.mark.parametrize(
    "saved, loads_as",
    [
        ("CLIPImageProcessorPil", "CLIPImageProcessor"),
        ("CLIPImageProcessorFast", "CLIPImageProcessor"),
        ("CLIPFeatureExtractor", "CLIPImageProcessor"),
        ("VideoMAEFeatureExtractor", "VideoMAEImageProcessor"),
        ("CLIPTokenizerFast", "CLIPTokenizer"),
        ("XCLIPProcessor", "XCLIPProcessor"),
        (None, None),
    ],
)
def test_saved_class_names_load_as_their_base_class(saved, loads_as):
    assert canonical_class(saved) == loads_as


def test_processor_input_side_from_saved_keys():
    assert processor_input_side({"do_center_crop": True, "crop_size": {"height": 224, "width": 224}}) == 224
    assert processor_input_side({"do_center_crop": True, "crop_size": 224, "size": 256}) == 224  # legacy ints
    assert processor_input_side({"size": {"height": 288, "width": 288}}) == 288
    assert processor_input_side({"size": {"shortest_edge": 224}}) is None  # not square without a crop
    assert processor_input_side({"patch_size": 16, "max_num_patches": 256}) is None  # NaFlex
