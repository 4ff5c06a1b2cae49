"""Detection sets: VOC and YOLO readers (folders and archives), bad annotations, box-aware augmentation."""

import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from nlpool_keras.data.box_augment import DetectionBatches, augment, crop_boxes, flip_boxes
from nlpool_keras.data.detection import EMPTY, NO_OBJECTS, OUTSIDE, detection_splits, read_detections

VOC_OBJECT = (
    "<object><name>{}</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"
)


def _voc_xml(filename, size, objects):
    body = "".join(VOC_OBJECT.format(*obj) for obj in objects)
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{body}</annotation>"
    )


def _image(path, width, height, value=100):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)


def _voc_tree(root, annotations, splits):
    """A Pascal VOC tree: {stem: (size, objects)} and {split: [stems]}."""
    for stem, (size, objects) in annotations.items():
        _image(f"{root}/JPEGImages/{stem}.png", *size)
        os.makedirs(f"{root}/Annotations", exist_ok=True)
        with open(f"{root}/Annotations/{stem}.xml", "w") as f:
            f.write(_voc_xml(f"{stem}.png", size, objects))
    os.makedirs(f"{root}/ImageSets/Main", exist_ok=True)
    for split, stems in splits.items():
        with open(f"{root}/ImageSets/Main/{split}.txt", "w") as f:
            f.write("\n".join(stems) + "\n")


def _tar(folder, path):
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=os.path.basename(folder))
    return path


def test_voc_tree_from_folder_and_archive_gives_fractional_boxes(tmp_path):
    root = tmp_path / "cells"
    _voc_tree(
        str(root),
        {"a": ((80, 40), [("dog", 8, 4, 40, 20), ("cat", 0, 0, 80, 40)]), "b": ((40, 40), [("dog", 10, 10, 30, 30)])},
        {"train": ["a"], "val": ["b"]},
    )
    for source in (str(root), _tar(str(root), str(tmp_path / "cells.tar.gz"))):
        assert detection_splits(source) == ["train", "val"]
        train = read_detections(source, "train", image_size=32)
        assert train.classes == ["cat", "dog"] and train.images.shape == (1, 32, 32, 3)
        np.testing.assert_allclose(train.boxes[0], [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]], atol=1e-6)
        np.testing.assert_array_equal(train.labels[0], [1, 0])
        assert train.skipped == {}
        val = read_detections(source, "val", image_size=32, classes=train.classes)
        np.testing.assert_allclose(val.boxes[0], [[0.25, 0.25, 0.75, 0.75]])


def test_voc_xml_beside_images_with_a_csv_split(tmp_path):
    root = tmp_path / "pets"
    for stem, box in (("p1", (2, 2, 10, 10)), ("p2", (0, 0, 20, 20))):
        _image(f"{root}/images/{stem}.jpg", 20, 20)
        os.makedirs(f"{root}/annotations", exist_ok=True)
        with open(f"{root}/annotations/{stem}.xml", "w") as f:
            f.write(_voc_xml(f"{stem}.jpg", (20, 20), [("pet", *box)]))
    os.makedirs(f"{root}/data")
    with open(f"{root}/data/test_labels.csv", "w") as f:
        f.write("filename,width,height,class,xmin,ymin,xmax,ymax\np2.jpg,20,20,pet,0,0,20,20\n")
    test = read_detections(str(root), "test", image_size=16)
    assert test.names == ["pets/images/p2.jpg"] or test.names == ["images/p2.jpg"]
    np.testing.assert_allclose(test.boxes[0], [[0, 0, 1, 1]])
    assert len(read_detections(str(root), None, image_size=16)) == 2


@pytest.mark.parametrize(
    "problem, match",
    [
        ("size", r"<size> says 50x40, the image .* is 40x40"),
        ("class", r"unknown class 'bird'"),
        ("listed", r"lists 1 images without an annotation file, e.g. \['ghost'\]"),
    ],
)
def test_voc_annotations_that_contradict_their_image_are_errors(tmp_path, problem, match):
    size = (50, 40) if problem == "size" else (40, 40)
    _voc_tree(
        str(tmp_path),
        {"a": ((40, 40), [("dog", 1, 1, 9, 9)])},
        {"train": ["a"] + (["ghost"] if problem == "listed" else [])},
    )
    if problem != "listed":
        with open(tmp_path / "Annotations" / "a.xml", "w") as f:
            f.write(_voc_xml("a.png", size, [("bird" if problem == "class" else "dog", 1, 1, 9, 9)]))
    with pytest.raises(ValueError, match=match):
        read_detections(str(tmp_path), "train", image_size=16, classes=["dog"])


def test_boxes_outside_or_empty_are_counted_skips_and_border_boxes_are_clipped(tmp_path):
    objects = [("dog", -0.5, 0, 10.5, 10), ("dog", 30, 30, 45, 39), ("dog", 5, 5, 5, 9), ("dog", 0, 0, 40, 40)]
    _voc_tree(str(tmp_path), {"a": ((40, 40), objects), "b": ((40, 40), [])}, {"train": ["a", "b"]})
    data = read_detections(str(tmp_path), "train", image_size=16)
    np.testing.assert_allclose(
        data.boxes[0], [[0, 0, 10.5 / 40, 0.25], [0, 0, 1, 1]], atol=1e-6
    )  # x0 -0.5 clipped to 0
    assert len(data.skipped[OUTSIDE]) == 1 and "(30, 30, 45, 39)" in data.skipped[OUTSIDE][0]
    assert len(data.skipped[EMPTY]) == 1
    assert data.skipped[NO_OBJECTS] == ["JPEGImages/b.png"]
    assert "2 boxes" in data.summary() and f"{OUTSIDE}: 1" in data.summary()


def _yolo_set(root, lines_by_image, names="names: [cat, dog, bird]\n"):
    with open(f"{root}/data.yaml", "w") as f:
        f.write("path: .\ntrain: images/tr\nval: images/va\n" + names)
    for (split, stem), lines in lines_by_image.items():
        _image(f"{root}/images/{split}/{stem}.jpg", 40, 20)
        if lines is not None:
            os.makedirs(f"{root}/labels/{split}", exist_ok=True)
            with open(f"{root}/labels/{split}/{stem}.txt", "w") as f:
                f.write(lines)


def test_yolo_set_splits_names_and_class_subsets(tmp_path):
    _yolo_set(
        str(tmp_path), {("tr", "x"): "1 0.5 0.5 0.5 0.5\n2 0.25 0.25 0.1 0.1\n", ("tr", "y"): None, ("va", "z"): ""}
    )
    archive = _tar(str(tmp_path), str(tmp_path.parent / "yolo.tar"))
    assert detection_splits(archive) == ["train", "val"]
    train = read_detections(archive, "train", image_size=8)
    assert train.classes == ["cat", "dog", "bird"]
    np.testing.assert_allclose(train.boxes[0], [[0.25, 0.25, 0.75, 0.75], [0.2, 0.2, 0.3, 0.3]], atol=1e-6)
    np.testing.assert_array_equal(train.labels[0], [1, 2])
    assert len(train.boxes[1]) == 0 and any("without a label file" in k for k in train.skipped)
    birds = read_detections(archive, "train", image_size=8, classes=["bird"])
    np.testing.assert_array_equal(birds.labels[0], [0])
    assert len(birds.skipped["boxes of other classes (skipped)"]) == 1
    with pytest.raises(FileNotFoundError, match="no split 'test'.*found: train, val"):
        read_detections(archive, "test", image_size=8)


@pytest.mark.parametrize(
    "line, match",
    [("3 0.5 0.5 0.1 0.1", r"x.txt:1: class id 3 \(of 3 names\)"), ("1 0.5 0.5", "expected 'class cx cy w h'")],
)
def test_yolo_bad_lines_are_errors(tmp_path, line, match):
    _yolo_set(str(tmp_path), {("tr", "x"): line + "\n"})
    with pytest.raises(ValueError, match=match):
        read_detections(str(tmp_path), "train", image_size=8)


def test_missing_detection_source_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file or folder at data='nothing.tar.gz'"):
        read_detections("nothing.tar.gz", "train")
    (tmp_path / "readme.txt").write_text("no annotations")
    with pytest.raises(ValueError, match="neither Pascal VOC XML annotations nor a YOLO set"):
        read_detections(str(tmp_path), "train")


def _render(size, boxes):
    """A black image with box i (fractions, at most 3 disjoint boxes) lit in colour channel i."""
    image = np.zeros((size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        image[int(round(y0 * size)) : int(round(y1 * size)), int(round(x0 * size)) : int(round(x1 * size)), i] = 255
    return image


def test_augmented_boxes_cover_the_pixels_their_objects_moved_to():
    """The image's content is the reference: each box is painted in its own colour, and after
    crop + resize + flip the pixels of that colour must lie where the returned box says."""
    boxes = np.array([[0.1, 0.1, 0.3, 0.4], [0.5, 0.45, 0.9, 0.7], [0.6, 0.05, 0.7, 0.15]], np.float32)
    labels = np.array([0, 1, 2], np.int32)
    image = _render(200, boxes)
    for seed in range(20):
        out, out_boxes, out_labels = augment(image, boxes, labels, 64, np.random.default_rng(seed))
        assert out.shape == (64, 64, 3) and out_boxes.shape == (len(out_labels), 4)
        for box, label in zip(out_boxes, out_labels, strict=True):
            rows, cols = np.nonzero(out[..., label] > 127)
            assert len(rows), f"seed {seed}: box of label {label} kept but its colour is gone"
            found = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]) / 64
            np.testing.assert_allclose(box, found, atol=2.5 / 64)  # resampled edges: within 2.5 output pixels


def test_crop_and_flip_boxes_against_hand_computed_values():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 1.0, 1.0]], np.float32)
    kept, labels = crop_boxes(boxes, np.array([4, 5]), (0.0, 0.0, 0.5, 0.5))  # second centre (0.8, 0.8) is out
    np.testing.assert_allclose(kept, [[0.2, 0.2, 0.6, 0.6]], atol=1e-6)
    np.testing.assert_array_equal(labels, [4])
    np.testing.assert_allclose(flip_boxes(boxes), [[0.7, 0.1, 0.9, 0.3], [0.0, 0.6, 0.4, 1.0]], atol=1e-6)


def test_detection_batches_are_a_function_of_seed_epoch_and_batch(tmp_path):
    _voc_tree(
        str(tmp_path),
        {f"i{k}": ((40, 40), [("dog", 4 * k, 4, 4 * k + 8, 12)]) for k in range(5)},
        {"train": [f"i{k}" for k in range(5)]},
    )
    data = read_detections(str(tmp_path), "train", image_size=32)
    count = lambda boxes, labels: np.array([len(labels)], np.int32)  # noqa: E731
    first = DetectionBatches(data, 16, 2, seed=3, epoch=1, encode=count)
    again = DetectionBatches(data, 16, 2, seed=3, epoch=1, encode=count)
    assert len(first) == 3 and first.label_shape == (1,)
    for b in range(3):
        np.testing.assert_array_equal(first[b][0], again[b][0])
    evaluation = DetectionBatches(data, 16, 5, seed=3, epoch=1, encode=count, train=False)
    np.testing.assert_array_equal(evaluation[0][1][:, 0], [1] * 5)  # no crop: every box stays
