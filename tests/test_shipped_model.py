"""The shipped parser `pretrained/wtq` still scores what its model card says on the first dev
questions (card.json's `dev_first`, within 3 points). Skips while no model is shipped, or without
WikiTableQuestions."""

import dataclasses
from pathlib import Path

import pytest

from mapo_jax import evaluation, pretrained

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "wtq"
TOLERANCE = 0.03


def first_questions_accuracy(package_dir: Path, data_dir: Path, cache_dir: Path, output_dir: Path):
    """(measured, card) accuracy on the card's first dev questions, decoded and scored the way the
    exporter measured them (beam search, official matching of the written predictions)."""
    from mapo_jax.data import datasets

    card = pretrained.read_card(package_dir)
    assert card is not None, f"{package_dir} has no {pretrained.CARD_JSON}: export it with launch/export_model.py"
    package = pretrained.load_package(package_dir)
    config = package.data_config.replace(data_dir=str(data_dir), cache_dir=str(cache_dir))
    dev = datasets.load_dataset(config, card["dev_split"])
    first = dataclasses.replace(dev, examples=dev.examples[: card["dev_first"]["questions"]])
    results = evaluation.decode_dataset(package, first, card["beam_size"])
    targets, expected = evaluation.dataset_targets(first)
    score = evaluation.official_score(output_dir, results, {"model": str(package_dir)}, targets, expected,
                                      f"the first {len(first.examples)} questions of {dev.split}")
    return score.accuracy, card["dev_first"]["accuracy"]


def test_shipped_model_scores_its_card_figure(request, tmp_path):
    if not pretrained.is_package(SHIPPED):
        pytest.skip(f"no trained model is shipped yet ({SHIPPED} holds no package: launch/export_model.py makes one)")
    data_dir, cache_dir = request.getfixturevalue("data_dir"), request.getfixturevalue("cache_dir")
    measured, recorded = first_questions_accuracy(SHIPPED, data_dir, cache_dir, tmp_path)
    assert abs(measured - recorded) <= TOLERANCE, f"first dev questions: {measured:.4f} now, the card says {recorded:.4f}"
