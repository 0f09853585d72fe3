from models.vocab import VocabConfig, Vocabulary


def test_mask_drops_special_unused_punctuation_fragments_and_numbers():
    vocab = {"[PAD]": 0, "[unused3]": 1, "[CLS]": 2, "horse": 3, "##ing": 4, ",": 5, "1999": 6, "a": 7, "man": 8, "café": 9}
    v = Vocabulary.from_tokenizer_vocab(vocab, special={"[PAD]", "[CLS]"})
    assert v.words == ["horse", "man"] and v.token_ids == [3, 8]
    assert v.index("Horse") == 0 and v.index("dog") is None


def test_sentencepiece_word_starts_are_kept_and_continuations_dropped():
    vocab = {"<s>": 1, "▁horse": 10, "ing": 11, "▁man": 12, "<0x0A>": 13}
    v = Vocabulary.from_tokenizer_vocab(vocab, special={"<s>"}, cfg=VocabConfig(ascii_only=False))
    assert v.words == ["horse", "man"]


def test_vocabulary_round_trip(tmp_path):
    v = Vocabulary(["horse", "man"], [3, 8])
    v.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").words == ["horse", "man"]
