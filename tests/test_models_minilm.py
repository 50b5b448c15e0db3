"""all-MiniLM-L6-v2 numpy encoder: behaviour a broken encoder cannot fake.

There is no torch here, so the checks are (a) the similarity matrix sentence-transformers
publishes for this checkpoint, (b) semantic orderings with clear margins, (c) invariance to
padding, and (d) deliberately broken encoders that must fail (a)-(c), showing the checks bite.
"""

import math

import numpy as np
import pytest

from golden.models.interfaces import FloatLinear
from golden.models.minilm import (
    MiniLM,
    MiniLMConfig,
    erf,
    gelu,
    linear_names,
    load_minilm,
)

# From the quickstart of the sentence-transformers documentation (index.rst / README), computed
# with SentenceTransformer("all-MiniLM-L6-v2"); printed to 4 decimals.
REFERENCE_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!",
                       "He drove to the stadium."]
REFERENCE_SIMILARITY = np.array([[1.0000, 0.6660, 0.1046],
                                 [0.6660, 1.0000, 0.1411],
                                 [0.1046, 0.1411, 1.0000]])
# half a unit of the printed 4th decimal plus float32 noise between torch and numpy
REFERENCE_TOLERANCE = 7e-5

# (anchor, paraphrase, unrelated)
TRIPLES = [
    ("A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."),
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch.",
     "The government announced new tax rules."),
    ("How do I reset my password?", "I forgot my password and need to change it.",
     "What time does the museum open?"),
    ("The car would not start this morning.", "My vehicle's engine failed to turn on today.",
     "She enjoys painting landscapes in watercolour."),
    ("Children are playing football in the park.", "Kids kick a soccer ball around on the grass.",
     "The recipe needs two cups of flour."),
]
MARGIN = 0.3

QUERIES = ["How do I bake bread at home?", "Which team won the championship game?",
           "Why are interest rates going up?", "What should I feed my cat?"]
DOCUMENTS = ["The central bank raised rates to fight inflation.",
             "A simple recipe for homemade sourdough loaves.",
             "Kittens need high-protein wet food several times a day.",
             "The home side won the final in extra time."]
ANSWERS = [1, 3, 0, 2]

SHORT = "A man is playing a guitar."
LONG = ["This considerably longer sentence about nothing in particular pads the batch out "
        "a good deal further than the short one does.",
        "Another long sentence, with commas, numbers like 1234 and several clauses, so that "
        "many padding tokens follow the short sentence."]


@pytest.fixture(scope="module")
def model():
    return MiniLM()


# -- checks shared by the real encoder and the broken ones ---------------------------------

def reference_error(encoder: MiniLM) -> float:
    embeddings = encoder.embed(REFERENCE_SENTENCES)
    return float(np.abs(embeddings @ embeddings.T - REFERENCE_SIMILARITY).max())


def smallest_margin(encoder: MiniLM) -> float:
    embeddings = encoder.embed([sentence for triple in TRIPLES for sentence in triple])
    anchor, paraphrase, unrelated = embeddings[0::3], embeddings[1::3], embeddings[2::3]
    margins = (anchor * paraphrase).sum(axis=1) - (anchor * unrelated).sum(axis=1)
    return float(margins.min())


def padding_error(encoder: MiniLM) -> float:
    alone = encoder.embed([SHORT])[0]
    batched = encoder.embed([SHORT] + LONG)[0]
    return float(np.abs(alone - batched).max())


# -- the real encoder ----------------------------------------------------------------------

def test_weights_and_config():
    config, weights = load_minilm()
    assert config == MiniLMConfig()
    assert config.head_dim == 32 and config.max_seq_length == 256
    assert "embeddings.position_ids" not in weights
    assert all(tensor.dtype == np.float32 for tensor in weights.values())
    assert sum(tensor.size for tensor in weights.values()) == 22_565_376  # 22.7M minus pooler
    assert len(linear_names(config)) == 36


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="num_heads 7"):
        MiniLMConfig(num_heads=7)
    with pytest.raises(ValueError, match="max_seq_length 600"):
        MiniLMConfig(max_seq_length=600)


def test_erf_and_gelu_are_exact():
    x = np.concatenate([np.linspace(-10, 10, 200_001), [0.0, 6.0, -6.0, 1e-300]])
    assert np.abs(erf(x) - np.array([math.erf(v) for v in x])).max() < 1e-14
    h = np.linspace(-8, 8, 4001).astype(np.float32)
    exact = np.array([v / 2 * (1 + math.erf(v / math.sqrt(2))) for v in h.astype(np.float64)])
    assert gelu(h).dtype == np.float32
    # float32-rounded exact values; in the far negative tail (|gelu| < 1e-12) 1 + erf cancels
    np.testing.assert_allclose(gelu(h), exact, rtol=1.2e-7, atol=1e-12)


def test_tokenizer(model):
    ids, mask = model.tokenize(["hello world", "the quick brown fox jumps over the lazy dog."])
    assert ids[0, :4].tolist() == [101, 7592, 2088, 102]
    assert mask.sum(axis=1).tolist() == [4, 12] and ids[0, 4:].tolist() == [0] * 8
    text = "the quick brown fox jumps over the lazy dog, twice."
    encoding = model.tokenizer.encode(text)
    assert encoding.ids[0] == 101 and encoding.ids[-1] == 102
    assert model.tokenizer.decode(encoding.ids) == text
    assert model.tokenize(["Hello World"])[0].tolist() == [[101, 7592, 2088, 102]]  # lowercases
    long_ids, long_mask = model.tokenize(["word " * 400])
    assert long_ids.shape == (1, 256) and long_ids[0, -1] == 102 and long_mask.all()


def test_embeddings_are_unit_norm(model):
    embeddings = model.embed(REFERENCE_SENTENCES + LONG)
    assert embeddings.shape == (5, 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-6)
    assert model.embed([]).shape == (0, 384)


def test_matches_published_similarity(model):
    assert reference_error(model) < REFERENCE_TOLERANCE


def test_paraphrases_beat_unrelated(model):
    assert smallest_margin(model) > MARGIN


def test_ranking(model):
    scores = model.embed(QUERIES) @ model.embed(DOCUMENTS).T
    assert scores.argmax(axis=1).tolist() == ANSWERS
    ordered = np.sort(scores, axis=1)
    assert (ordered[:, -1] - ordered[:, -2]).min() > 0.2


def test_padding_invariance(model):
    assert padding_error(model) < 1e-5
    # hidden states of the real tokens, not just the pooled result
    ids, mask = model.tokenize([SHORT] + LONG)
    length = int(mask[0].sum())
    alone = model.forward(ids[:1, :length], mask[:1, :length])
    batched = model.forward(ids, mask)
    np.testing.assert_allclose(batched[0, :length], alone[0], atol=1e-4)


def test_batch_order_does_not_matter(model):
    sentences = [sentence for triple in TRIPLES for sentence in triple]
    together = model.embed(sentences)
    in_pairs = model.embed(sentences, batch_size=2)
    np.testing.assert_allclose(together, in_pairs, atol=1e-5)


class RecordingLinear(FloatLinear):
    def __init__(self):
        self.names = []

    def prepare(self, name, weight):
        self.names.append((name, weight.shape))
        return super().prepare(name, weight)


class ZeroLinear(FloatLinear):
    """Drops one layer's product, to show the plug-in is really on the data path."""

    def apply(self, prepared, x):
        out = super().apply(prepared, x)
        return np.zeros_like(out) if out.shape[1] == 1536 else out


def test_linear_plug_in(model):
    recording = RecordingLinear()
    plugged = MiniLM(model.weights, model.config, linear=recording)
    assert [name for name, _ in recording.names] == linear_names(model.config)
    assert recording.names[4] == ("encoder.layer.0.intermediate.dense", (1536, 384))
    np.testing.assert_array_equal(plugged.embed(REFERENCE_SENTENCES),
                                  model.embed(REFERENCE_SENTENCES))
    zeroed = MiniLM(model.weights, model.config, linear=ZeroLinear())
    assert reference_error(zeroed) > 0.05


def test_capture(model):
    capture = {}
    ids, mask = model.tokenize([SHORT] + LONG)
    model.forward(ids, mask, capture=capture)
    tokens = int(mask.sum())
    assert list(capture) == linear_names(model.config)
    for name, (recorded,) in capture.items():
        width = 1536 if name.endswith("output.dense") and "attention" not in name else 384
        assert recorded.shape == (tokens, width) and recorded.dtype == np.float32
    first = "encoder.layer.0.attention.self."
    np.testing.assert_array_equal(capture[first + "query"][0], capture[first + "key"][0])
    # layer 0 sees the embeddings of the real tokens, in (sentence, token) order
    embedded = model.embeddings(ids, np.zeros_like(ids))[mask]
    np.testing.assert_array_equal(capture[first + "query"][0], embedded.astype(np.float32))
    # the MLP's second layer sees GELU outputs, never below GELU's minimum of about -0.17
    assert capture["encoder.layer.5.output.dense"][0].min() > -0.1701
    more = {}
    model.embed([SHORT], capture=more)
    model.embed(LONG, capture=more)
    assert [len(chunks) for chunks in more.values()] == [2] * 36


# -- broken encoders must fail ---------------------------------------------------------------

class NoAttentionMask(MiniLM):
    def attention_bias(self, mask):
        return np.zeros((mask.shape[0], 1, 1, mask.shape[1]), np.float32)


class NoEmbeddingLayerNorm(MiniLM):
    def embeddings(self, ids, token_type_ids):
        w = self.weights
        return (w["embeddings.word_embeddings.weight"][ids]
                + w["embeddings.position_embeddings.weight"][:ids.shape[1]][None]
                + w["embeddings.token_type_embeddings.weight"][token_type_ids])


class ReluInsteadOfGelu(MiniLM):
    def activation(self, x):
        return np.maximum(x, 0)


class TanhApproximateGelu(MiniLM):
    def activation(self, x):
        return 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + 0.044715 * x**3)))


@pytest.mark.parametrize("broken, check, threshold", [
    (NoAttentionMask, padding_error, 1e-5),
    (NoAttentionMask, reference_error, REFERENCE_TOLERANCE),
    (NoEmbeddingLayerNorm, reference_error, REFERENCE_TOLERANCE),
    (NoEmbeddingLayerNorm, lambda encoder: -smallest_margin(encoder), -MARGIN),
    (ReluInsteadOfGelu, reference_error, REFERENCE_TOLERANCE),
    (TanhApproximateGelu, reference_error, REFERENCE_TOLERANCE),
], ids=["no-mask/padding", "no-mask/reference", "no-embedding-ln/reference",
        "no-embedding-ln/margin", "relu/reference", "tanh-gelu/reference"])
def test_broken_encoder_fails(model, broken, check, threshold):
    assert check(model) < threshold
    assert check(broken(model.weights, model.config)) > threshold
