"""Model packages (mapo_jax/pretrained.py, launch/export_model.py): parameter files, float16, the
rebuilt word vectors, words a split adds, and export -> load -> evaluate on a toy-trained run."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mapo_jax import checkpointing, evaluation, pretrained
from mapo_jax.errors import UserInputError

from conftest import small_config

REPO = Path(__file__).resolve().parents[1]


def _run(args, cwd=REPO):
    """A launcher (`launch/NAME.py`, found from the repository whatever `cwd`) in a subprocess."""
    return subprocess.run([sys.executable, str(REPO / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, glove):
    """A toy run trained for 2 steps (dev evaluations at steps 0 and 2, a best checkpoint)."""
    from mapo_jax.config import DataConfig
    from mapo_jax.data.synthetic import load_toy
    from mapo_jax.explore.warm_start import WarmStartConfig, run_warm_start
    from mapo_jax.training import train_and_evaluate

    root = tmp_path_factory.mktemp("toy_run")
    run_warm_start(load_toy("train"), root / "warm", WarmStartConfig(rollouts_per_example=10, extra_rollouts_for_hard=0,
                                                                      processes=1), log=lambda m: None)
    config = small_config(str(root / "warm" / "programs.json"), n_steps=2, log_every=1)
    train_and_evaluate(DataConfig(dataset="toy"), config, log=lambda m: None, workdir=str(root / "run"))
    return root / "run"


@pytest.fixture(scope="module")
def exported(toy_run, tmp_path_factory):
    """The toy run exported by the launcher, with a benchmark record and notes for its card:
    (package directory, the command's result)."""
    root = tmp_path_factory.mktemp("packages")
    out = root / "toy"
    (root / "record.json").write_text(json.dumps({"name": "toy_seed0", "date": "2026-12-07", "command":
                                                  "python launch/train.py --dataset=toy  # legs: a, b"}))
    (root / "notes.md").write_text("- word vectors: 50-d, because ...\n")
    result = _run(["launch/export_model.py", f"--workdir={toy_run}", f"--out={out}",
                   f"--records={root / 'record.json'}", f"--card_notes={root / 'notes.md'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


# ------------------------------------------------------------------------------- pure parts
def test_parameters_flatten_and_round_trip_through_float16():
    params = {"dense": {"kernel": np.array([[0.1, -2.0]], np.float32), "bias": np.array([3.0], np.float32)},
              "steps": np.array([7], np.int32)}
    flat = pretrained.flatten_params(params)
    assert sorted(flat) == ["dense/bias", "dense/kernel", "steps"]
    back = pretrained.unflatten_params(flat)
    assert back.keys() == params.keys() and np.array_equal(back["dense"]["kernel"], params["dense"]["kernel"])
    half = pretrained.to_float16(flat)
    assert half["dense/kernel"].dtype == np.float16 and half["steps"].dtype == np.int32
    full = pretrained.to_float32(half)
    assert full["dense/kernel"].dtype == np.float32
    assert full["dense/kernel"][0, 0] == np.float32(0.0999755859375)  # 0.1 has no exact float16: 1638/16384
    assert full["dense/kernel"][0, 1] == -2.0 and full["dense/bias"][0] == 3.0
    with pytest.raises(UserInputError, match="float16's range"):
        pretrained.to_float16({"w": np.array([1e5], np.float32)})
    with pytest.raises(ValueError, match="separator"):
        pretrained.flatten_params({"a/b": np.zeros(1)})


def test_word_vector_check_tolerates_rounding_not_other_rows():
    matrix = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    check = pretrained.vector_check(matrix)
    assert pretrained.same_vectors(check, matrix + np.float32(1e-7))
    assert not pretrained.same_vectors(check, matrix[[1, 0, 2, 3, 4]])
    assert not pretrained.same_vectors(check, matrix[:4])


# ------------------------------------------------------------------------------- export -> load -> evaluate
def test_exported_package_predicts_exactly_as_the_runs_best_checkpoint(toy_run, exported):
    out, result = exported
    best = checkpointing.restore_policy(toy_run, "best")
    # the exporter evaluated the package read back from disk: its predictions are the training's own
    # predictions of the best step, byte for byte
    assert (toy_run / "eval" / "export-best" / "predictions.tsv").read_bytes() == \
        (toy_run / "dev_predictions.tsv").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "card.json", "config.json", "package.json",
                                                     "params.npz", "vocab.json"]
    with np.load(out / "params.npz") as stored:
        assert pretrained.WORD_VECTORS not in stored.files  # rebuilt from GloVe, not stored
    package = pretrained.load_package(out)
    assert np.array_equal(package.params[pretrained.WORD_VECTORS], best.params[pretrained.WORD_VECTORS])
    flat_package, flat_best = pretrained.flatten_params(package.params), pretrained.flatten_params(best.params)
    assert flat_package.keys() == flat_best.keys()
    assert all(np.array_equal(flat_package[k], flat_best[k]) for k in flat_best)
    assert package.model_config == best.model_config and package.step == best.step
    assert package.data_config.data_dir is None and package.read_as_unk == frozenset()  # min_count 1


def test_model_card_records_the_figures(toy_run, exported):
    out, result = exported
    card = json.loads((out / "card.json").read_text())
    best = json.loads((toy_run / "checkpoints" / "best" / str(card["step"]) / "meta" / "metadata").read_text())
    assert card["dev"]["questions"] == 160 and card["dev"]["accuracy"] == pytest.approx(best["dev_accuracy"])
    assert card["dev_first"]["questions"] == 160  # the toy dev split has fewer than 200 questions
    assert [s for s, _ in card["dev_curve"]] == [0, 2]
    assert "--n_steps=2" in card["training_command"] and f"--workdir={toy_run}" in card["training_command"]
    text = (out / "MODEL_CARD.md").read_text()
    percent = f"{100 * card['dev']['accuracy']:.1f}% ({card['dev']['correct']}/160)"
    assert f"**{percent}**" in text and "## Known limits" in text
    assert card["records"] == [{"name": "toy_seed0", "date": "2026-12-07",
                                "command": "python launch/train.py --dataset=toy  # legs: a, b"}]
    assert "- `toy_seed0` (2026-12-07):" in text and "  python launch/train.py --dataset=toy  # legs: a, b" in text
    assert "(see the recorded commands below, where they name one)." in text
    assert "## Choices and evidence\n\n- word vectors: 50-d, because ...\n" in text
    assert f"dev accuracy (beam 5, official matching): {card['dev']['accuracy']:.4f}" in result.stdout


def test_export_refuses_a_non_empty_directory(toy_run, exported, tmp_path):
    out, _ = exported
    result = _run(["launch/export_model.py", f"--workdir={toy_run}", f"--out={out}"])
    assert result.returncode == 2 and "is not empty: pass --overwrite" in result.stderr
    (tmp_path / "notes.txt").write_text("mine")
    result = _run(["launch/export_model.py", f"--workdir={toy_run}", f"--out={tmp_path}", "--overwrite"])
    assert result.returncode == 2 and "not a model package" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "record.json").write_text('{"name": "no command"}')
    for bad, message in ((f"--records={tmp_path / 'absent.json'}", "absent.json does not exist"),
                         (f"--records={tmp_path / 'record.json'}", "not a benchmark record with a 'command'"),
                         (f"--card_notes={tmp_path / 'absent.md'}", "absent.md does not exist")):
        result = _run(["launch/export_model.py", f"--workdir={toy_run}", f"--out={tmp_path / 'new'}", bad])
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert not (tmp_path / "new").exists()


def test_refresh_card_rewrites_the_text_and_keeps_the_measurements(exported, tmp_path):
    out, _ = exported
    copy = tmp_path / "best"
    shutil.copytree(out, copy)
    before = json.loads((copy / "card.json").read_text())
    stale = {**before, "training_command": "python launch/train.py '--workdir=$HOME/as/rendered/before'"}
    (copy / "card.json").write_text(json.dumps(stale))  # the command is rendered again, as the export renders it
    (tmp_path / "notes.md").write_text("- evidence: the ablation gave 12.3%\n")
    result = _run(["launch/export_model.py", "--refresh_card", f"--out={copy}", f"--card_notes={tmp_path / 'notes.md'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((copy / "card.json").read_text())
    assert card == {**before, "name": "best", "notes": "- evidence: the ablation gave 12.3%\n"}  # records kept
    text = (copy / "MODEL_CARD.md").read_text()
    assert text.startswith("# Model card: best\n") and "the ablation gave 12.3%" in text and "50-d, because" not in text
    assert "- `toy_seed0` (2026-12-07):" in text
    assert (copy / "params.npz").read_bytes() == (out / "params.npz").read_bytes()
    result = _run(["launch/export_model.py", "--refresh_card", f"--out={tmp_path / 'absent'}"])
    assert result.returncode == 2 and "is not a model package with a card" in result.stderr


def test_float16_package_loads_back_as_float32(toy_run, tmp_path):
    best = checkpointing.restore_policy(toy_run, "best")
    for name, half in (("full", False), ("half", True)):
        (tmp_path / name).mkdir()
        pretrained.save_package(tmp_path / name, best, {"run": "r"}, (), float16=half)
    package = pretrained.load_package(tmp_path / "half", vectors=best.featurizer.vectors)
    kernel = package.params["attention_key"]["kernel"]
    assert kernel.dtype == np.float32
    assert np.array_equal(kernel, best.params["attention_key"]["kernel"].astype(np.float16).astype(np.float32))
    assert np.array_equal(package.params[pretrained.WORD_VECTORS], best.params[pretrained.WORD_VECTORS])  # exact
    sizes = {name: (tmp_path / name / pretrained.PARAMS_FILE).stat().st_size for name in ("full", "half")}
    assert sizes["half"] < 0.6 * sizes["full"]


# ------------------------------------------------------------------------------- words of a new split
def _question(text, dataset):
    from mapo_jax.data.annotate import AnnotationOptions, TableIndex
    from mapo_jax.data.wtq import Question, make_example

    example = dataset.examples[0]
    table = dataset.tables[example.table]
    return make_example(Question("new", text, example.table, "1", None), table, AnnotationOptions(), TableIndex(table))


def test_unseen_words_get_their_glove_vector_else_unk(toy_run, glove):
    from mapo_jax.data.synthetic import load_toy
    from mapo_jax.data.vocab import UNK_ID

    dev = load_toy("dev")
    run_policy = checkpointing.restore_policy(toy_run, "best")
    example = _question("which giraffe zebra qqxxzzk has the highest population", dev)
    assert pretrained.with_words(run_policy, [example]) is run_policy  # a run: unseen words stay <UNK>
    policy = pretrained.with_words(run_policy._replace(read_as_unk=frozenset({"zebra"})), [example])
    vocab, old = policy.featurizer.vocab, run_policy.featurizer.vocab
    assert vocab.tokens == old.tokens + ("giraffe",)
    ids = dict(zip(example.tokens, policy.featurizer.features(example, dev.tables[example.table], 0)[0]))
    assert ids["giraffe"] == len(old) and ids["zebra"] == UNK_ID and ids["qqxxzzk"] == UNK_ID
    assert ids["which"] == old.id("which")
    matrix = policy.params[pretrained.WORD_VECTORS]
    assert np.array_equal(matrix[ids["giraffe"] - 4], glove.lookup("giraffe"))
    assert np.array_equal(matrix[: len(old) - 4], run_policy.params[pretrained.WORD_VECTORS])
    assert policy.model_config.encoder_vocab_size == len(old) + 1
    # and the extended model decodes (its jitted functions take the larger table)
    split = dataclasses.replace(dev, examples=[example, dev.examples[1]])
    results = evaluation.decode_dataset(run_policy._replace(read_as_unk=frozenset()), split, beam_size=2)
    assert [r.id for r in results] == ["new", dev.examples[1].id] and results[0].beam


# ------------------------------------------------------------------------------- the launchers
def test_evaluate_and_predict_with_packages(exported, tmp_path):
    out, _ = exported
    for name in ("a", "b"):
        shutil.copytree(out, tmp_path / "members" / name)
    result = _run(["launch/evaluate.py", f"--ensemble={tmp_path / 'members'}", "--beam_size=2",
                   f"--output_dir={tmp_path / 'ens'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model 2" in result.stdout and "ensemble of 2 by program" in result.stdout
    assert json.loads((tmp_path / "ens" / "model1" / "summary.json").read_text())["model"].endswith("a")
    result = _run(["launch/evaluate.py", f"--model={out}", "--checkpoint=latest"])
    assert result.returncode == 2 and "a model package has one set of parameters" in result.stderr
    result = _run(["launch/evaluate.py", f"--model={json.loads((out / 'package.json').read_text())['run']}"])
    assert result.returncode == 2 and "is a training run, not a model package: pass it as --workdir" in result.stderr
    table = tmp_path / "medals.csv"
    table.write_text("Nation,Gold,Silver\nPeru,3,1\nChile,5,2\nBrazil,1,4\n")
    result = _run(["launch/predict.py", f"--model={out}", f"--table={table}", "--explain", "--beam_size=2",
                   "--question=which nation has the most gold giraffes qqxxzzk?"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1. p=" in result.stdout and "how the top program computes its answer:" in result.stdout
    assert "      -> " in result.stdout


def test_predict_without_a_model_says_none_is_shipped(tmp_path):
    """A checkout without pretrained/ (the launchers copied alone: this repository ships a model)."""
    shutil.copytree(REPO / "launch", tmp_path / "clone" / "launch", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "t.csv").write_text("a\n1\n")
    result = subprocess.run([sys.executable, str(tmp_path / "clone" / "launch" / "predict.py"),
                             f"--table={tmp_path / 't.csv'}", "--question=what?"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no trained model is shipped yet")
    assert "--workdir" in result.stderr and "--model" in result.stderr


def test_training_command_rebuilds_the_configs():
    """The card's command, parsed as train.py parses it, gives the run's configs back."""
    from absl import flags

    from mapo_jax import config as config_lib
    from mapo_jax.data.annotate import AnnotationOptions

    data = config_lib.DataConfig(dataset="wtq", split="3", annotation=AnnotationOptions(expand_entities=False))
    program = config_lib.ProgramConfig(max_n_exp=4)
    train = config_lib.TrainConfig(min_count=1, learning_rate=0.0005, systematic_exploration=False, seed=3,
                                   programs_file="/runs/warm start/programs.json", early_stop_evals=5,
                                   entropy_coeff=-0.01, outside_draw_weight="original")
    args = config_lib.training_flags(data, program, train)
    assert "--train_seed=3" in args and "--nosystematic_exploration" in args and "--noexpand_entities" in args
    assert not any(a.startswith(("--data_dir", "--workdir", "--objective")) for a in args)  # defaults left out
    values = flags.FLAGS
    try:
        values(["train.py", *args])
        assert config_lib.data_config_from_flags() == data
        assert config_lib.program_config_from_flags() == program
        assert config_lib.train_config_from_flags() == train
    finally:
        values.unparse_flags()


def test_training_command_shows_home_paths_so_the_shell_expands_them(monkeypatch):
    """A path under the home directory is written `$HOME/...` outside quotes (a quoted `$HOME` would
    make a directory named `$HOME`); other words are quoted as usual."""
    from pathlib import Path

    from mapo_jax.model_card import training_command

    monkeypatch.setattr(Path, "home", lambda: Path("/home/ann"))
    command = training_command(["--programs_file=/home/ann/runs/warm start/programs.json", "--train_seed=2"],
                               "/home/ann/runs/seed2")
    assert command == ("python launch/train.py --programs_file=$HOME'/runs/warm start/programs.json' "
                       "--train_seed=2 --workdir=$HOME/runs/seed2")
    assert training_command([], "/data/run") == "python launch/train.py --workdir=/data/run"
