"""Tests of erlrestore.serving.repository: loading TF Serving's folder layout and its version folders."""

import shutil

import pytest

from erlrestore import serving
from erlrestore.data import image_files
from serving_testing import MODEL_NAME, exported_models


models = pytest.fixture(exported_models, scope="module", name="models")  # (base, {version: keras model})


def test_load_models_errors(tmp_path, models):
    with pytest.raises(image_files.DataError, match="model base path .*missing does not exist"):
        serving.load_models(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(image_files.DataError, match="no models under .*empty"):
        serving.load_models(tmp_path / "empty")
    with pytest.raises(image_files.DataError, match="model 'other' not found: .*other is not a folder"):
        serving.load_models(models[0], ["other"])
    (tmp_path / "base" / "m" / "notaversion").mkdir(parents=True)
    with pytest.raises(image_files.DataError, match="model 'm' has no integer version folder"):
        serving.load_models(tmp_path / "base", ["m"])
    with pytest.raises(image_files.DataError, match="no models under"):
        serving.load_models(tmp_path / "base")
    (tmp_path / "base" / "m" / "3").mkdir()
    with pytest.raises(image_files.DataError, match=r"version folder .*m.3 of model 'm' holds no saved_model.pb"):
        serving.load_models(tmp_path / "base")
    (tmp_path / "base" / "m" / "3" / "saved_model.pb").write_bytes(b"\xff" * 10)
    with pytest.raises(image_files.DataError, match=r"could not read the SavedModel protocol buffer in .*m.3"):
        serving.load_models(tmp_path / "base")


def test_a_model_folder_itself_can_be_the_base_path(models):
    repository = serving.load_models(models[0] / MODEL_NAME, ["restorer"])
    assert list(repository.models) == ["restorer"] and sorted(repository.models["restorer"]) == [1, 2]
    assert repository.get("restorer").version == 2


def test_only_folders_named_by_ascii_digits_are_versions(models, tmp_path):
    model_dir = tmp_path / "base" / "m"
    shutil.copytree(models[0] / MODEL_NAME / "1", model_dir / "1")
    shutil.copytree(models[0] / MODEL_NAME / "2", model_dir / "\u00b2")  # a superscript two: str.isdigit() says yes
    shutil.copytree(models[0] / MODEL_NAME / "2", model_dir / "\u0663")  # an Arabic-Indic three: int() reads it
    (model_dir / ".tmp-4-123").mkdir()  # an export in progress
    (model_dir / "5").write_bytes(b"")  # a file, not a folder
    repository = serving.load_models(tmp_path / "base")
    assert list(repository.models) == ["m"] and list(repository.models["m"]) == [1]
    shutil.copytree(models[0] / MODEL_NAME / "2", model_dir / "01")
    with pytest.raises(image_files.DataError, match=r"m.01 and .*m.1 are both version 1"):
        serving.load_models(tmp_path / "base")
