"""What one press of the page's button does, without Gradio: a video and labels -> a browser
preview, the ranked labels (the same call as `clipaction predict`), the timeline (the same call
as `clipaction timeline`: segments, WebVTT subtitles, timeline.png) and the files to download.

The model, its feature cache and the prompt templates are made once per server (`Analyzer`);
frame features are cached by the video's content, so a second request with new labels on the
same video only encodes the labels.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipaction.classify.run import VideoPrediction, check_labels, open_cache, predict_videos
from clipaction.errors import DataError
from clipaction.features.cache import video_key
from clipaction.features.clips import sampler_for
from clipaction.outputs import write_json, write_text_atomic
from clipaction.serve.preview import browser_playable, make_preview
from clipaction.serve.settings import ServeConfig

log = logging.getLogger(__name__)

#: progress(fraction in [0, 1], what is being done)
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    pass


@dataclass
class Analysis:
    """The outcome of one request. `files` maps json (ranking and timeline), csv (ranking) and,
    with a timeline, segments (CSV) and vtt to paths; `segments` are dicts start, end, label,
    score (seconds, mean probability)."""

    name: str
    prediction: VideoPrediction
    preview: Path
    files: dict[str, Path]
    seconds: float
    subtitles: Path | None = None
    timeline_png: Path | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    #: why there is no timeline (a video the timeline could not read), else None
    timeline_note: str | None = None

    @property
    def top(self) -> tuple[str, float]:
        return self.prediction.labels[0]


def score_note(kind: str, n_labels: int) -> str:
    """How to read the probabilities of a score kind."""
    if kind == "softmax":
        return f"softmax over your {n_labels} labels: the probabilities sum to 100%, so each one depends on the others"
    return "sigmoid: each label's probability is independent of the others (they need not sum to 100%)"


def ranking_payload(name: str, prediction: VideoPrediction, model: dict[str, Any]) -> dict[str, Any]:
    """The JSON download: `predict --json`'s object for this video, with the model described."""
    return {
        "video": name,
        "score": prediction.score,
        "labels": [{"label": label, "probability": prob} for label, prob in prediction.labels],
        "model": model,
    }


def ranking_csv(prediction: VideoPrediction) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "label", "probability", "score"])
    for rank, (label, prob) in enumerate(prediction.labels, 1):
        writer.writerow([rank, label, f"{prob:.6f}", prediction.score])
    return out.getvalue()


class Analyzer:
    """The server's model (loaded once; weights on first use), cache and templates."""

    def __init__(self, config: ServeConfig) -> None:
        from clipaction.classify.scoring import load_templates
        from clipaction.models import load_backend

        self.config = config
        self.backend = load_backend(config.model)
        self.templates = load_templates(config.templates)
        self.cache = open_cache(config.cache_dir, self.backend)
        # what predict_videos will use (a clip model's own frame count); a sampler the model
        # cannot take fails here, when the server starts
        self.sampler = sampler_for(self.backend, config.sampler)

    def describe(self) -> dict[str, Any]:
        """The model as the page shows it: name, family, precision, device, score kind."""
        facts = self.backend.describe()
        name = self.config.model.name_or_path
        if Path(name).expanduser().exists():  # a local folder: its name, not the server's file system
            name = Path(name).expanduser().resolve().name
        return {
            "name_or_path": name,
            "family": facts.get("family", "?"),
            "precision": self.config.model.precision,
            "device": str(self.backend.device),
            "score": facts.get("score", "softmax"),
            "sampler": self.sampler.label,
        }

    def preview(self, video: Path, folder: Path, progress: Progress = _no_progress) -> Path:
        """A browser-playable copy of `video` in `folder` (one per content: a second request on
        the same video reuses it). DataError when `video` is not a readable video."""
        try:
            key = video_key(video)
        except OSError as error:
            raise DataError(f"cannot read {video.name}: {error.strerror or error}", setting="video") from None
        folder.mkdir(parents=True, exist_ok=True)
        if browser_playable(video):
            target = folder / f"{key}{video.suffix.lower()}"
            if not target.exists():
                shutil.copyfile(video, target)
            return target
        target = folder / f"{key}.mp4"
        if not target.exists():
            progress(0.0, "making a preview the browser can play")
            make_preview(video, target, progress=lambda f: progress(0.3 * f, "making a preview the browser can play"))
        return target

    def rank(self, video: Path, labels: Sequence[str]) -> VideoPrediction:
        """The labels ranked for `video`, exactly as `clipaction predict` ranks them."""
        labels = check_labels(labels)
        predictions, failures = predict_videos(
            [video],
            labels,
            self.backend,
            self.config.sampler,
            templates=self.templates,
            cache=self.cache,
            batch_size=self.config.model.batch_size,
            workers=self.config.workers,
            progress=True,  # a tqdm bar, which the page follows
        )
        if not predictions:
            reason = failures[0].error if failures else "no frames could be decoded"
            raise DataError(f"cannot read {video.name} as a video: {reason}", setting="video")
        return predictions[0]

    def timeline(self, video: Path, labels: Sequence[str], folder: Path) -> dict[str, Any]:
        """`clipaction timeline`'s outputs for `video` in `folder` (its library call, with the
        timeline's default settings and this server's model, prompts and cache): the video's
        summary (`outputs` names windows.csv, segments.csv, segments.json, the VTT and
        timeline.png) and its segments as ActivityNet rows. DataError when it cannot read it."""
        from clipaction.timeline import TimelineConfig, label_videos

        config = TimelineConfig(
            labels=tuple(labels),
            templates=self.config.templates,
            model=self.config.model,
            cache_dir=self.config.cache_dir,
            workers=self.config.workers,
        )
        results = label_videos([video], config, folder, backend=self.backend, progress=True)
        if not results["videos"]:
            reason = results["failures"][0]["error"] if results["failures"] else "no frames could be decoded"
            raise DataError(f"no timeline for {video.name}: {reason}", setting="video")
        summary = results["videos"][0]
        found = json.loads(Path(summary["outputs"]["segments_json"]).read_text(encoding="utf-8"))
        return {"summary": summary, "segments": found["results"][summary["id"]], "settings": results["settings"]}

    def analyse(
        self,
        video: Path,
        labels: Sequence[str],
        folder: Path,
        *,
        name: str | None = None,
        progress: Progress = _no_progress,
    ) -> Analysis:
        """Preview, ranking and download files for `video`, written into `folder` (`name`: what
        the user calls the video, e.g. the uploaded file's name)."""
        started = time.perf_counter()
        name = name or video.name
        labels = check_labels(labels)
        preview = self.preview(video, folder.parent / "previews", progress)
        progress(0.35, "encoding frames and labels")
        prediction = self.rank(video, labels)
        progress(0.6, "labelling the video over time")
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(name).stem or "video"
        files = {"json": folder / f"{stem}.json", "csv": folder / f"{stem}.ranking.csv"}
        payload = ranking_payload(name, prediction, self.describe())
        result = Analysis(name, prediction, preview, files, 0.0)
        try:
            timeline = self.timeline(video, labels, folder / "timeline")
        except DataError as error:  # the ranking stands on its own; say why the timeline is missing
            log.warning("%s", error.message)
            result.timeline_note = error.message
        else:
            outputs = timeline["summary"]["outputs"]
            files["segments"] = Path(outputs["segments"])
            files["vtt"] = Path(outputs["subtitles"])
            result.subtitles = Path(outputs["subtitles"])
            result.timeline_png = Path(outputs["figure"])
            result.segments = [
                {"start": row["segment"][0], "end": row["segment"][1], "label": row["label"], "score": row["score"]}
                for row in timeline["segments"]
            ]
            payload["timeline"] = {
                "settings": {
                    k: timeline["settings"][k] for k in ("fps", "window", "stride", "threshold", "min_segment")
                },
                "duration": timeline["summary"]["duration"],
                "segments": result.segments,
                "seconds_per_label": timeline["summary"]["seconds_per_label"],
            }
        write_json(files["json"], payload)
        write_text_atomic(files["csv"], ranking_csv(prediction))
        progress(1.0, "done")
        result.seconds = time.perf_counter() - started
        return result
