"""The demo's recognizer (library code behind the Space) on every tiny backbone; the app tests run one."""

from PIL import Image

from hf_finedefics.recognizer import FinedeficsRecognizer


def test_recognizer_ranks_asks_and_describes(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    categories = ["Chihuahua", "Maltese dog", "Japanese spaniel", "Shih-Tzu", "Pekinese"]
    recognizer = FinedeficsRecognizer(model.eval(), processor, description_max_new_tokens=8)
    result = recognizer.recognize(Image.new("RGB", (40, 30), (200, 120, 10)), categories, superclass="dog", top_k=3)
    ranking = recognizer.rank(Image.new("RGB", (40, 30), (200, 120, 10)), categories)
    assert sorted(name for name, _ in ranking) == sorted(categories)
    assert [score for _, score in ranking] == sorted((score for _, score in ranking), reverse=True)
    assert result.top_k == ranking[:3]
    assert result.options == sorted((name for name, _ in ranking[:4]), key=str.lower)
    assert result.prediction in result.options and result.answered_by in ("generation", "likelihood")
