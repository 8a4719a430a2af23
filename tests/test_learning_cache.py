"""tests/learning.py trains each recipe once per process, however a test spells the call (a second
training of the ViT or the reverse model costs make test 20-40 s of its ten minutes)."""

from tests import learning


def test_every_spelling_of_a_run_shares_one_training(monkeypatch):
    calls = []

    def fake_train(name, *, profile_name, seed, progress):
        calls.append((name, seed, profile_name))
        return {"seed": seed}, f"run {name} {seed}", "history"

    learning._cached_run.cache_clear()
    monkeypatch.setattr(learning.recipes, "train_recipe", fake_train)
    try:
        runs = [learning.training_run("vit", 0), learning.training_run("vit", 0, "cpu"),
                learning.training_run("vit", seed=0, profile_name="cpu")]
        metrics, run = learning.trained("vit", 0)
        assert calls == [("vit", 0, "cpu")], calls
        assert all(r is runs[0] for r in runs) and run == "run vit 0"
        learning.training_run("vit", 0, "gpu")                   # another profile is another run
        assert calls[-1] == ("vit", 0, "gpu") and len(calls) == 2
    finally:
        learning._cached_run.cache_clear()                     # the fakes must not reach the real tests
