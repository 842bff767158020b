"""MetaCLIP 2 through transformers: `MetaClip2Model` and its own processor.

CLIP's architecture and scoring (softmax over the labels of scale x cosine, a linear visual
projection, a trainable image tower), so the CLIP backend serves it with the model class
swapped. What differs is the text side: MetaCLIP 2 ships an XLM-R tokenizer whose end-of-text
id is 2, and its text model pools at the first token with the config's `eos_token_id`. The
backend runs the model's own text path (`text_model(...).pooler_output`, then
`text_projection`), so the text is pooled where MetaCLIP 2 pools it. Loaded as CLIP instead,
CLIP's text model treats eos id 2 as the legacy case and pools at the highest token id: wrong
features without any error, which is why the family is chosen from config.json's model_type.
"""

from __future__ import annotations

from clipaction.models.catalog import Family, HubModel, register_family
from clipaction.models.families.clip import HFClipBackend
from clipaction.models.registry import BACKENDS


@BACKENDS.register("metaclip_2")
class MetaClip2Backend(HFClipBackend):
    """MetaClip2Model + its processor (CLIPProcessor with an XLM-R tokenizer), in eval mode.
    See `clipaction.models.base.Backend`."""

    family = "metaclip_2"
    model_class = "MetaClip2Model"


# What `clipaction models` and the docs say about this family (clipaction.models.catalog):
# hub ids, inputs, scoring, and published figures with their sources.
CATALOG = register_family(
    Family(
        family="metaclip_2",
        title="MetaCLIP 2",
        transformers_class="MetaClip2Model",
        kind="frame",
        scores="softmax(scale·cos) over the labels",
        models=(HubModel("facebook/metaclip-2-worldwide-huge-quickgelu", 224),),
        pick="CLIP's architecture trained on worldwide (multilingual) data: labels in other "
        "languages than English; same capabilities as CLIP. No published UCF101/HMDB51 figure.",
        notes=(
            "Its end-of-text token id differs from OpenAI CLIP's: loading it as CLIP pools the text at the wrong token.",
        ),
    )
)
