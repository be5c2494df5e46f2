"""What a training needs before its first step: data, environments, the encoder vocabulary, the model
config (all from one `ProgramConfig`), and the warm start that fills the actors' memory buffers."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from mapo_jax import checkpointing
from mapo_jax.batching import Featurizer
from mapo_jax.buffer import MemoryBuffer
from mapo_jax.config import DataConfig, ModelConfig, ProgramConfig, TrainConfig, configs_to_json, split_parts
from mapo_jax.data import datasets
from mapo_jax.data.embeddings import load_glove
from mapo_jax.data.vocab import EncoderVocab, build_encoder_vocab, pretrained_matrix
from mapo_jax.env import QAEnvironment, Vocabulary
from mapo_jax.errors import UserInputError
from mapo_jax.explore.systematic import example_seed, random_explore
from mapo_jax.explore.warm_start import WarmStartConfig, load_programs
from mapo_jax.io_utils import atomic_write_text, read_json
from mapo_jax.lisp.functions import TableView
from mapo_jax.training.workdir import WARM_START_DIR, prepare_workdir

# The warm start of a library call without flags: in-process, one process (a spawned pool needs the
# caller's `__main__` guard), a short random exploration.
LIBRARY_WARM_START = WarmStartConfig(rollouts_per_example=200, extra_rollouts_for_hard=0, processes=1)


def make_environments(dataset, punish_extra_work: bool, vocabulary: Vocabulary,
                      program: ProgramConfig = ProgramConfig()) -> List[QAEnvironment]:
    """One environment per question; questions on the same table share its `TableView` caches."""
    views: Dict[str, TableView] = {}
    envs = []
    for example in dataset.examples:
        table = dataset.tables[example.table]
        view = views.setdefault(example.table, TableView(table))
        envs.append(QAEnvironment(example, table, punish_extra_work=punish_extra_work, view=view,
                                  vocabulary=vocabulary, function_set=program.function_set,
                                  limits=program.limits))
    return envs


def training_environments(dataset, program: ProgramConfig) -> List[QAEnvironment]:
    """The episodes of training questions: a program that leaves a variable unused earns 0 there."""
    return make_environments(dataset, True, Vocabulary(program.function_set, program.limits.max_mem), program)


def evaluation_environments(dataset, program: ProgramConfig) -> List[QAEnvironment]:
    """The episodes of evaluated questions: a program's answer is all that counts."""
    return make_environments(dataset, False, Vocabulary(program.function_set, program.limits.max_mem), program)


def make_featurizer(vocab: EncoderVocab, vectors, program: ProgramConfig) -> Featurizer:
    """Encoder features with room for the program settings' memory slots."""
    return Featurizer(vocab, vectors, max_mem=program.limits.max_mem)


class Setup(NamedTuple):
    train_envs: List[QAEnvironment]
    dev_envs: List[QAEnvironment]
    featurizer: Featurizer
    vocab: EncoderVocab
    model_config: ModelConfig
    pretrained: np.ndarray
    train_dataset: object


def setup(data_config: DataConfig, cfg: TrainConfig, vocab: Optional[EncoderVocab] = None,
          program: ProgramConfig = ProgramConfig()) -> Setup:
    """Data, vocabulary (built, or the run's saved one), environments and the model config, all
    with the same program settings."""
    if not data_config.split.isdigit():
        raise UserInputError(f"training takes a split pair: --split=1..5 (got {data_config.split!r})")
    train_split, dev_split = split_parts(data_config)
    train = datasets.load_dataset(data_config, train_split)
    dev = datasets.load_dataset(data_config, dev_split)
    vectors = load_glove(cfg.glove_file)
    if vocab is None:
        vocab = build_encoder_vocab(train.examples + dev.examples, vectors, min_count=cfg.min_count)
    limits = program.limits
    vocabulary = Vocabulary(program.function_set, limits.max_mem)
    model_config = ModelConfig(encoder_vocab_size=len(vocab), pretrained_dim=vectors.dim, hidden_size=cfg.hidden_size,
                               n_builtin=vocabulary.n_builtin, dropout=cfg.dropout, max_variables=limits.max_n_exp,
                               max_mem=limits.max_mem, max_valid=limits.max_valid)
    return Setup(training_environments(train, program), evaluation_environments(dev, program),
                 make_featurizer(vocab, vectors, program), vocab, model_config, pretrained_matrix(vocab, vectors),
                 train)


def setup_in_workdir(data_config: DataConfig, cfg: TrainConfig, program: ProgramConfig,
                     workdir: Optional[Path]) -> Setup:
    """`setup` with the run directory's own vocabulary when it has one (ids depend on the data it was
    built from); the directory's config.json is checked (a restart must match) and written."""
    vocab = None
    if workdir is not None and (workdir / checkpointing.VOCAB_FILE).exists():
        vocab = EncoderVocab.from_json(read_json(workdir / checkpointing.VOCAB_FILE))
    s = setup(data_config, cfg, vocab, program)
    if workdir is not None:
        prepare_workdir(workdir, configs_to_json(data_config, program, s.model_config, cfg))
        atomic_write_text(workdir / checkpointing.VOCAB_FILE, json.dumps(s.vocab.to_json()))
    return s


def warm_start_settings(warm_start_config: Optional[WarmStartConfig], program: ProgramConfig) -> WarmStartConfig:
    """The warm start explores with the run's own program settings (one source for both)."""
    return dataclasses.replace(warm_start_config or LIBRARY_WARM_START, **dataclasses.asdict(program))


def warm_start(s: Setup, cfg: TrainConfig, workdir: Optional[Path], warm_start_config: WarmStartConfig,
               log) -> MemoryBuffer:
    """The buffers' first programs: `programs_file`, else WORKDIR/warm_start (explored now if missing),
    else (no workdir) a quick in-process random exploration."""
    start = time.perf_counter()
    buffer = MemoryBuffer()
    path = Path(cfg.programs_file) if cfg.programs_file else None
    if path is None and workdir is not None:
        path = workdir / WARM_START_DIR / "programs.json"
        if not path.exists():
            from mapo_jax.explore.warm_start import run_warm_start

            log(f"[train] no warm-start programs yet: exploring the training questions into {path.parent}")
            run_warm_start(s.train_dataset, path.parent, warm_start_config, log=log)
    envs_by_id = {env.example.id: env for env in s.train_envs}
    if path is not None:
        stats = buffer.load_programs(envs_by_id, load_programs(path))
        log(f"[train] loaded {stats['loaded']} warm-start programs from {path} (skipped {stats['skipped']})")
    else:
        for env in s.train_envs:
            rng = random.Random(example_seed(cfg.seed, env.example.id))
            found, _ = random_explore(env, warm_start_config.rollouts_per_example, set(), rng)
            for tokens in found:
                buffer.add(env.example.id, env.replay(tokens))
    for env in s.train_envs:  # replaying every program filled the interpreter memos: free them
        env.release_memory()
    coverage = buffer.coverage(list(envs_by_id))
    log(f"[train] warm start: {coverage:.1%} of {len(envs_by_id)} questions have a program "
        f"({time.perf_counter() - start:.1f} s)")
    return buffer
