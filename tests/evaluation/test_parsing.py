import pytest

from hf_finedefics.evaluation import parse_choice

DOGS = ["Chihuahua", "Japanese_spaniel", "Maltese_dog", "toy_terrier"]
PETS = ["Abyssinian", "Bengal", "Egyptian Mau", "Siamese"]
CATS_LAST = ["Bengal", "Egyptian Mau", "Siamese", "Abyssinian"]
AIRCRAFT = ["Boeing 737", "Boeing 737-800", "A320", "Fokker 100"]

# (answer text, options, expected index or None)
PARSER_TABLE = [
    # bare letters, any case, wrapped
    ("B", DOGS, 1),
    ("b.", DOGS, 1),
    ("(C)", DOGS, 2),
    ("**D**", DOGS, 3),
    (" a \n", DOGS, 0),
    # letters used as labels or stated
    ("Answer: D", DOGS, 3),
    ("D. Chihuahua is a small dog.", DOGS, 3),
    ("(B) Japanese spaniel", DOGS, 1),
    ("C) Maltese dog", DOGS, 2),
    ("The answer is A.", DOGS, 0),
    ("The correct option is (C).", DOGS, 2),
    ("B\nThe dog has long silky ears.", DOGS, 1),
    # option names, underscores read as spaces, any case
    ("It is a Japanese spaniel.", DOGS, 1),
    ("chihuahua", DOGS, 0),
    ("This looks like a toy terrier to me", DOGS, 3),
    # the original parser's traps: a leading word is not a letter
    ("Chihuahua", CATS_LAST, None),
    ("An Abyssinian", CATS_LAST, 3),
    ("An Abyssinian", PETS, 0),
    ("A Siamese cat", PETS, 3),
    ("the answer is a Japanese spaniel", DOGS, 1),
    # the longest matching option wins
    ("It is a Boeing 737-800.", AIRCRAFT, 1),
    ("Boeing 737", AIRCRAFT, 0),
    # whole words only
    ("The dog looks pugnacious", ["Pug", "Boxer", "Beagle", "Collie"], None),
    # failures
    ("", DOGS, None),
    ("I cannot tell.", DOGS, None),
    ("E", DOGS, None),
    ("The answer is E.", DOGS, None),
    ("A dog.", DOGS, None),  # an article, and no option is named
]


@pytest.mark.parametrize(("text", "options", "expected"), PARSER_TABLE)
def test_parse_choice(text, options, expected):
    assert parse_choice(text, options) == expected
