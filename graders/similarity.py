"""OpenAI's `text_similarity` grader, on well-kept metric libraries.

| metric          | library                                                                  |
|-----------------|--------------------------------------------------------------------------|
| fuzzy_match     | rapidfuzz `fuzz.WRatio` with `utils.default_process`, / 100              |
| bleu            | sacrebleu `sentence_bleu` (13a tokenizer, exp smoothing), / 100          |
| gleu            | nltk `sentence_gleu` on lower-cased word tokens                          |
| meteor          | nltk `meteor_score`; WordNet synonyms only where NLTK's WordNet data is  |
|                 | installed, else exact and stem matches (details say which)               |
| rouge_1..rouge_5, rouge_l | rouge-score F-measure                                          |
| cosine          | cosine of embeddings from an OpenAI-compatible `/v1/embeddings` endpoint |
"""

from __future__ import annotations

import math
import os
from functools import cache
from typing import Any, Literal

import regex
from pydantic import Field

from .base import Grader, register
from .grade import Grade
from .template import as_text

__all__ = ["TextSimilarity", "similarity", "METRICS"]

Metric = Literal[
    "fuzzy_match", "bleu", "gleu", "meteor", "cosine",
    "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l",
]  # fmt: skip
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]

_WORD = regex.compile(r"\w+|[^\w\s]")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _NoSynonyms:
    """Stands in for WordNet when its data is not installed: METEOR then matches exact words and stems."""

    def synsets(self, *_args: Any, **_kwargs: Any) -> list[Any]:
        return []


@cache
def _wordnet() -> tuple[Any, bool]:
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError:
        return _NoSynonyms(), False
    return wordnet, True


@cache
def _rouge(key: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([key])


def similarity(metric: str, text: str, reference: str) -> tuple[float, dict[str, Any]]:
    """Score `text` against `reference` with a lexical metric (all but cosine); in [0, 1]."""
    details: dict[str, Any] = {}
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz, utils

        score = fuzz.WRatio(text, reference, processor=utils.default_process) / 100.0
    elif metric == "bleu":
        import sacrebleu

        score = sacrebleu.sentence_bleu(text, [reference]).score / 100.0
    elif metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        score = sentence_gleu([_words(reference)], _words(text))
    elif metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        wordnet, has_synonyms = _wordnet()
        score = meteor_score([_words(reference)], _words(text), wordnet=wordnet)
        details["meteor_synonyms"] = has_synonyms
    elif metric.startswith("rouge_"):
        key = "rougeL" if metric == "rouge_l" else "rouge" + metric[-1]
        score = _rouge(key).score(reference, text)[key].fmeasure
    else:
        raise ValueError(f"{metric!r} is not a lexical metric")
    return min(1.0, max(0.0, float(score))), details


@register("text_similarity")
class TextSimilarity(Grader):
    """OpenAI `text_similarity`: score in [0, 1]; passed when score >= pass_threshold (default 1.0).

    `cosine` needs an embedding model: `embedding_model` (and `base_url`) in the spec, or the
    environment variables RFT_EMBEDDING_MODEL (and RFT_EMBEDDING_BASE_URL).
    """

    type: Literal["text_similarity"] = "text_similarity"
    input: str
    reference: str
    evaluation_metric: Metric
    pass_threshold: float = 1.0
    embedding_model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    request_timeout: float = Field(default=30.0, gt=0)

    template_fields = ("input", "reference")

    def model_post_init(self, _context: Any) -> None:
        super().model_post_init(_context)
        if self.evaluation_metric == "cosine" and not (
            self.embedding_model or os.environ.get("RFT_EMBEDDING_MODEL")
        ):
            raise ValueError(
                "evaluation_metric 'cosine' needs an embedding model: set \"embedding_model\" "
                '(and "base_url" of an OpenAI-compatible server) or RFT_EMBEDDING_MODEL'
            )

    def _grade(self, ctx: dict[str, Any]) -> Grade:
        text = as_text(self.render("input", ctx))
        reference = as_text(self.render("reference", ctx))
        if not text.strip():
            return Grade.no_answer("empty input")
        if self.evaluation_metric == "cosine":
            from .judge import EndpointError, EndpointTimeout

            try:
                score, details = self._cosine(text, reference)
            except EndpointTimeout as e:
                return Grade.timeout(f"embedding request timed out: {e}")
            except EndpointError as e:
                return Grade.error(f"embedding request failed: {e}")
        else:
            score, details = similarity(self.evaluation_metric, text, reference)
        return Grade(score, "ok", score >= self.pass_threshold, text, details)

    def _cosine(self, text: str, reference: str) -> tuple[float, dict[str, Any]]:
        from .judge import embed

        model = self.embedding_model or os.environ["RFT_EMBEDDING_MODEL"]
        base_url = self.base_url or os.environ.get("RFT_EMBEDDING_BASE_URL")
        a, b = embed([text, reference], model=model, base_url=base_url, api_key=self.api_key,
                     timeout=self.request_timeout)  # fmt: skip
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        if norm == 0:
            raise ValueError("the embedding model returned a zero vector")
        return max(0.0, min(1.0, dot / norm)), {"embedding_model": model}
