"""Data readers and batches on real Imagenette images (../shared/data)."""

import os

import numpy as np
import pytest
from PIL import Image

from nlpool_keras.data import DEFAULT_ARCHIVE, load_images, read_image_archive, read_image_folder, read_tfds
from nlpool_keras.data.pipeline import EpochBatches, _py_dataset, _tf_dataset, center_crop, random_resized_crop

pytestmark = pytest.mark.skipif(not os.path.isfile(DEFAULT_ARCHIVE), reason="needs ../shared/data")


@pytest.fixture(scope="module")
def val():
    return read_image_archive(DEFAULT_ARCHIVE, "val", per_class=3)


def test_archive_split_has_ten_sorted_classes(val):
    images, labels, classes = val
    assert classes == sorted(classes) and len(classes) == 10
    assert images.dtype == np.uint8 and images.shape == (30, 128, 128, 3)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 3))
    assert 20 < images.mean() < 235  # decoded pictures, not blank


def test_folder_reads_what_was_written(val, tmp_path):
    images, labels, classes = val
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = tmp_path / "val" / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    read, read_labels, read_classes = load_images(str(tmp_path), "val")
    np.testing.assert_array_equal(read, images)
    np.testing.assert_array_equal(read_labels, labels)
    assert read_classes == classes
    small, _, _ = read_image_folder(str(tmp_path), "val", per_class=1, image_size=40)
    assert small.shape == (10, 40, 40, 3)


def test_missing_sources_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file or folder at data='missing/data.tar'"):
        load_images("missing/data.tar")
    with pytest.raises(FileNotFoundError, match="no folder 'train'"):
        read_image_folder(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"'imagenette' is not prepared in data_dir=.*tfds build imagenette"):
        read_tfds("imagenette", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown tensorflow-datasets name='no_such_dataset_xyz'"):
        read_tfds("no_such_dataset_xyz", data_dir=str(tmp_path))


def test_prepared_tfds_dataset_is_read_offline(val, tmp_path):
    import tensorflow_datasets as tfds

    images, labels, classes = val

    class ImagenetteSample(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(128, 128, 3)), "label": tfds.features.ClassLabel(names=classes)}
            )
            return self.dataset_info_from_configs(features=features, supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {"validation": self._generate_examples()}

        def _generate_examples(self):
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                yield i, {"image": image, "label": int(label)}

    ImagenetteSample(data_dir=str(tmp_path)).download_and_prepare()
    read, read_labels, read_classes = load_images(
        "imagenette_sample", "validation", per_class=2, data_dir=str(tmp_path)
    )
    assert read_classes == classes and len(read) == 20
    assert np.bincount(read_labels).tolist() == [2] * 10
    for image, label in zip(read, read_labels, strict=True):  # PNG inside: lossless
        assert any(np.array_equal(image, original) for original in images[labels == label])


def test_random_resized_crop_and_center_crop(val):
    image = val[0][0]
    rng = np.random.default_rng(0)
    crops = [random_resized_crop(image, 48, rng) for _ in range(20)]
    assert all(c.shape == (48, 48, 3) and c.dtype == np.uint8 for c in crops)
    assert len({c.tobytes() for c in crops}) == 20
    flat = np.full((128, 160, 3), 77, np.uint8)
    np.testing.assert_array_equal(center_crop(flat, 64), np.full((64, 64, 3), 77))
    marked = np.zeros((128, 128, 3), np.uint8)
    marked[56:72, 56:72] = 255  # the centre 16 x 16 scales to the centre 8 x 8 of a 56-px crop of a 64-px resize
    crop = center_crop(marked, 56)
    assert crop[25:31, 25:31].min() > 200 and crop[:20].max() == 0 and crop[:, :20].max() == 0


def test_epoch_batches_are_pure_and_the_same_through_tf_data_and_pydataset(val):
    images, labels, _ = val
    batches = EpochBatches(images, labels, 32, 8, seed=3, epoch=1)
    assert len(batches) == 4  # 30 images: 8 + 8 + 8 + 6
    backwards = [batches[b] for b in reversed(range(4))][::-1]
    for b, (x, y) in enumerate(backwards):
        np.testing.assert_array_equal(x, batches[b][0])
        np.testing.assert_array_equal(y, batches[b][1])
        assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 255
    order = np.concatenate([y for _, y in backwards])
    assert sorted(order.tolist()) == sorted(labels.tolist()) and order.tolist() != labels.tolist()
    other_epoch = EpochBatches(images, labels, 32, 8, seed=3, epoch=2)
    assert not np.array_equal(other_epoch[0][0], batches[0][0])
    for carrier in (_tf_dataset(batches, workers=2), _py_dataset(batches, workers=2)):
        carried = list(carrier) if carrier.__class__.__name__ == "PyBatches" else list(carrier.as_numpy_iterator())
        assert len(carried) == 4
        for (x, y), (ref_x, ref_y) in zip(carried, backwards, strict=True):
            np.testing.assert_array_equal(np.asarray(x), ref_x)
            np.testing.assert_array_equal(np.asarray(y), ref_y)
    evaluation = EpochBatches(images, labels, 32, 8, seed=3, epoch=0, train=False)
    np.testing.assert_array_equal(evaluation[0][0][0], center_crop(images[0], 32))
    np.testing.assert_array_equal(np.concatenate([evaluation[b][1] for b in range(4)]), labels)


def _write_folder(root, splits, images, labels, classes):
    for split in splits:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:03d}.png")


@pytest.mark.parametrize(
    "splits, expected",
    [(("train", "test"), "test"), (("train", "validation", "test"), "validation"), (("train", "val", "test"), "val")],
)
def test_evaluation_split_is_val_then_validation_then_test(val, tmp_path, splits, expected):
    from nlpool_keras.data import evaluation_split

    _write_folder(tmp_path, splits, *[v[:2] for v in val[:2]], val[2])
    assert evaluation_split(str(tmp_path)) == expected
    assert evaluation_split(str(tmp_path), "train") == "train"  # a named split is taken as it is


def test_evaluation_split_errors_list_what_was_found(val, tmp_path):
    from nlpool_keras.data import evaluation_split

    _write_folder(tmp_path, ("train", "holdout"), *[v[:2] for v in val[:2]], val[2])
    with pytest.raises(
        FileNotFoundError, match=r"looked for val, validation, test, found: holdout, train.*--val-split"
    ):
        evaluation_split(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no split 'dev' in source=.*found: holdout, train"):
        evaluation_split(str(tmp_path), "dev")
    assert evaluation_split(DEFAULT_ARCHIVE) == "val"  # the archive's top-level folders
