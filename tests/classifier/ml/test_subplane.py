"""The brain sub-plane study's parts: grouped folds, near-duplicate merging, the logistic regression, the rule,
and `manage.py evaluate_subplane` end to end on a tiny synthetic folder (the real data is not needed)."""

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from classifier.ml.subplane import (
    RULE,
    SUBPLANES,
    SoftmaxRegression,
    figures,
    fold_of,
    merge_near_duplicates,
    out_of_fold,
    read_brain_images,
)


class TestFoldOf:
    def test_keeps_every_patients_images_in_one_fold(self):
        groups = [f"patient-{i // 3}" for i in range(60)]  # 20 patients, 3 images each

        fold = fold_of(groups, 5, seed=0)

        for group in set(groups):
            assert len({int(fold[i]) for i, g in enumerate(groups) if g == group}) == 1
        assert sorted(np.bincount(fold).tolist()) == [12, 12, 12, 12, 12]

    def test_is_seeded(self):
        groups = [f"p{i}" for i in range(30)]

        assert fold_of(groups, 5, seed=3).tolist() == fold_of(groups, 5, seed=3).tolist()
        assert fold_of(groups, 5, seed=3).tolist() != fold_of(groups, 5, seed=4).tolist()


class TestMergeNearDuplicates:
    def test_merges_patients_sharing_a_near_identical_image_transitively(self):
        rng = np.random.default_rng(0)
        base = rng.normal(size=(4, 16))
        features = np.vstack([base[0], base[0] + 1e-3, base[1], base[1] + 1e-3, base[2], base[3]])
        groups = ["a", "b", "b", "c", "d", "e"]  # a~b through image 0/1, b~c through image 2/3

        merged = merge_near_duplicates(groups, features, threshold=0.99)

        assert merged == ["a+b+c", "a+b+c", "a+b+c", "a+b+c", "d", "e"]

    def test_leaves_distinct_images_apart(self):
        features = np.eye(4)

        assert merge_near_duplicates(["a", "b", "c", "d"], features) == ["a", "b", "c", "d"]


def three_blobs(n_per_class: int, dims: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dims)) * 4
    x = np.vstack([centre + rng.normal(scale=spread, size=(n_per_class, dims)) for centre in centres])
    return x, np.repeat(np.arange(3), n_per_class)


class TestSoftmaxRegression:
    def test_learns_a_separable_problem_and_predicts_unseen_points(self):
        x, y = three_blobs(40, 10, spread=0.5, seed=1)
        x_new, y_new = three_blobs(20, 10, spread=0.5, seed=1)

        model = SoftmaxRegression.fit(x, y, num_classes=3, l2=1e-2)

        assert np.array_equal(model.probabilities(x).argmax(axis=1), y)
        assert np.array_equal(model.probabilities(x_new).argmax(axis=1), y_new)
        assert np.allclose(model.probabilities(x_new).sum(axis=1), 1.0)

    def test_a_strong_penalty_flattens_the_probabilities(self):
        x, y = three_blobs(30, 5, spread=0.5, seed=2)

        weak = SoftmaxRegression.fit(x, y, num_classes=3, l2=1e-3).probabilities(x).max(axis=1).mean()
        strong = SoftmaxRegression.fit(x, y, num_classes=3, l2=1e3).probabilities(x).max(axis=1).mean()

        assert weak > 0.95
        assert strong < 0.4


class TestOutOfFold:
    def test_separable_classes_are_recalled_and_noise_is_not(self):
        x, y = three_blobs(20, 8, spread=0.5, seed=3)
        groups = [f"p{i // 2}" for i in range(len(y))]  # two images per patient
        noise = np.random.default_rng(3).normal(size=x.shape)

        separable, fold, l2s = out_of_fold(x, y, groups, folds=5, seed=0)
        random, _, _ = out_of_fold(noise, y, groups, folds=5, seed=0)

        assert np.mean(separable.argmax(axis=1) == y) == 1.0
        assert np.mean(random.argmax(axis=1) == y) < 0.6
        assert len(l2s) == 5
        assert len(set(fold.tolist())) == 5


class TestFiguresAndRule:
    def test_perfect_predictions_pass_the_rule_and_chance_fails_it(self):
        y = np.repeat(np.arange(3), 30)
        groups = [f"p{i}" for i in range(len(y))]
        chance = np.random.default_rng(0).integers(0, 3, len(y))

        perfect = figures(y, y, groups, rounds=200)
        guessed = figures(y, chance, groups, rounds=200)

        assert perfect["macro_recall"] == {"value": 1.0, "ci": [1.0, 1.0]}
        assert RULE.shortfalls(perfect) == []
        assert any("macro recall" in s for s in RULE.shortfalls(guessed))
        assert any("trans-thalamic precision" in s for s in RULE.shortfalls(guessed))

    def test_confusion_matrix_rows_are_the_true_sub_plane(self):
        y = np.array([0, 0, 1, 2])
        predicted = np.array([0, 1, 1, 2])

        result = figures(y, predicted, ["a", "b", "c", "d"], rounds=50)

        assert result["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
        assert result["per_class"][SUBPLANES[0]]["recall"]["value"] == 0.5
        assert result["per_class"][SUBPLANES[1]]["precision"]["value"] == 0.5


def tinted_png(seed: int) -> bytes:
    """A noisy image of one random colour: the tiny model's four features differ between such images (on plain
    noise they are near-identical, and every patient would be merged into one group)."""
    rng = np.random.default_rng(seed)
    pixels = rng.uniform(0, 255, 3) + rng.normal(0, 5, (24, 24, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_brain_dir(tmp_path_factory) -> Path:
    """Twelve tinted images, four per sub-plane, one patient each, plus rows the study must skip."""
    directory = tmp_path_factory.mktemp("brain-planes")
    rows = []
    planes = [*SUBPLANES * 4, "Other", "Not A Brain"]
    labels = ["fetal_brain"] * 13 + ["fetal_thorax"]
    for index, (plane, label) in enumerate(zip(planes, labels, strict=True)):
        data = tinted_png(seed=100 + index)
        (directory / f"{index}.png").write_bytes(data)
        rows.append(
            {
                "file": f"{index}.png",
                "label": label,
                "split": "test" if index < 4 else "train",
                "source": "tiny",
                "group": f"patient-{index}",
                "brain_plane": plane,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    with open(directory / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return directory


class TestReadBrainImages:
    def test_keeps_brain_images_with_one_of_the_three_sub_planes(self, tiny_brain_dir):
        images = read_brain_images(tiny_brain_dir)

        assert len(images) == 12
        assert {image.subplane for image in images} == set(SUBPLANES)


class TestEvaluateSubplaneCommand:
    def test_writes_figures_and_a_verdict_for_a_tiny_folder(self, tiny_model_dir, tiny_brain_dir, tmp_path):
        out, json_out = io.StringIO(), tmp_path / "subplane.json"

        call_command(
            "evaluate_subplane",
            "--data",
            str(tiny_brain_dir),
            "--card",
            str(tiny_model_dir / "tiny-v1.card.json"),
            "--folds",
            "3",
            "--json-out",
            str(json_out),
            stdout=out,
        )

        result = json.loads(json_out.read_text())
        assert result["data"]["images"] == 12
        assert result["data"]["per_split"] == {"train": 8, "val": 0, "test": 4}
        for variant in ("plain", "mirror_averaged"):
            block = result[variant]
            assert sum(map(sum, block["figures"]["confusion_matrix"])) == 12
            assert len(block["predictions"]) == 12
            assert len(block["l2_per_fold"]) == 3
            assert block["useful"] is (block["shortfalls"] == [])
        assert result["data"]["groups_after_merging_near_duplicates"] >= 3
        assert "useful:" in out.getvalue()

    def test_refuses_a_folder_without_a_manifest(self, tiny_model_dir, tmp_path):
        with pytest.raises(CommandError, match="no manifest.csv"):
            call_command(
                "evaluate_subplane", "--data", str(tmp_path), "--card", str(tiny_model_dir / "tiny-v1.card.json")
            )
