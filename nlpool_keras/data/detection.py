"""Object-detection sets: Pascal VOC XML and YOLO txt annotations, from a folder or an archive.

Boxes are (x0, y0, x1, y1) fractions of the image's width and height, so they stay valid
when the image is resized. Every image is resized (stretched) to `image_size` x `image_size`.

What an annotation gets wrong is never turned into a box silently:
- an error (ValueError naming the file) for an annotation that contradicts its image or the
  class list: a `<size>` that differs from the decoded JPEG, an unknown class name or id, a
  line that is not `class cx cy w h`, an image listed in a split that has no annotation file;
- a counted skip, reported in `DetectionSet.skipped` (reason -> ["file: detail", ...]), for a
  box outside the image by more than one pixel, or empty or inverted; boxes within a pixel of
  the border are clipped to it. Images without objects are kept (they teach the background)
  and counted under "images without objects".
"""

import dataclasses
import io
import posixpath
import xml.etree.ElementTree as ElementTree

import numpy as np

from nlpool_keras.data.archive import IMAGE_SUFFIXES
from nlpool_keras.data.files import FileTree

BORDER_TOLERANCE = 1.0  # pixels a box may stray past the image and be clipped
NO_OBJECTS = "images without objects"
OUTSIDE = "boxes outside the image (skipped)"
EMPTY = "empty or inverted boxes (skipped)"


@dataclasses.dataclass
class DetectionSet:
    """One split of a detection set.

    Attributes:
        images: uint8 (M, S, S, 3).
        boxes: M float32 arrays (K_i, 4): x0, y0, x1, y1 as fractions of the image.
        labels: M int32 arrays (K_i,): class indices into `classes`.
        classes: class names.
        names: the M images' paths in the set.
        skipped: reason -> ["path: detail", ...] of what was skipped or noted.
    """

    images: np.ndarray
    boxes: list
    labels: list
    classes: list
    names: list
    skipped: dict

    def __len__(self):
        return len(self.images)

    def head(self, count):
        """The first `count` images and their annotations (the split's skips are not carried)."""
        return DetectionSet(
            self.images[:count], self.boxes[:count], self.labels[:count], self.classes, self.names[:count], {}
        )

    def summary(self):
        """One line: images, boxes per class, and each skip reason's count."""
        counts = np.bincount(np.concatenate(self.labels or [[]]).astype(int), minlength=len(self.classes))
        per_class = ", ".join(f"{c} {n}" for c, n in zip(self.classes, counts, strict=True))
        line = f"{len(self)} images, {int(counts.sum())} boxes ({per_class})"
        return line + "".join(f"; {reason}: {len(items)}" for reason, items in self.skipped.items())


def _decode(data, image_size):
    """(uint8 (image_size, image_size, 3), (width, height) of the stored image)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        size = image.size
        image.draft("RGB", (image_size, image_size))  # JPEG: decode at a reduced scale when it can
        image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8), size


def _clean_boxes(path, pixel_boxes, labels, width, height, skipped):
    """Fractional boxes and labels of boxes given in pixels; skips what is outside or empty."""
    kept_boxes, kept_labels = [], []
    for (x0, y0, x1, y1), label in zip(pixel_boxes, labels, strict=True):
        detail = f"{path}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) in a {width}x{height} image"
        if min(x0, y0) < -BORDER_TOLERANCE or x1 > width + BORDER_TOLERANCE or y1 > height + BORDER_TOLERANCE:
            skipped.setdefault(OUTSIDE, []).append(detail)
            continue
        x0, x1 = np.clip([x0, x1], 0, width)
        y0, y1 = np.clip([y0, y1], 0, height)
        if x1 <= x0 or y1 <= y0:
            skipped.setdefault(EMPTY, []).append(detail)
            continue
        kept_boxes.append((x0 / width, y0 / height, x1 / width, y1 / height))
        kept_labels.append(label)
    return np.array(kept_boxes, np.float32).reshape(-1, 4), np.array(kept_labels, np.int32)


# ---------------------------------------------------------------- Pascal VOC


def _voc_objects(tree, xml_path):
    """(filename, (width, height) or None, [(name, (x0, y0, x1, y1))]) of one VOC XML file."""
    try:
        root = ElementTree.fromstring(tree.read(xml_path))
    except ElementTree.ParseError as error:
        raise ValueError(f"{xml_path} is not readable XML: {error}") from None
    filename = (root.findtext("filename") or "").strip()
    width, height = (int(float(root.findtext(f"size/{k}") or 0)) for k in ("width", "height"))
    objects = []
    for item in root.iter("object"):
        name = (item.findtext("name") or "").strip()
        try:
            box = tuple(float(item.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise ValueError(f"{xml_path}: object {name!r} has no numeric bndbox xmin/ymin/xmax/ymax") from None
        objects.append((name, box))
    return filename, ((width, height) if width > 0 and height > 0 else None), objects


def _image_beside(tree, xml_path, filename, images_by_name):
    """The image an XML file names: beside it, in a sibling JPEGImages/ or images/ folder, or
    the one image of that name anywhere in the set."""
    folder = posixpath.dirname(xml_path)
    for candidate in (
        posixpath.join(folder, filename),
        posixpath.join(posixpath.dirname(folder), "JPEGImages", filename),
        posixpath.join(posixpath.dirname(folder), "images", filename),
    ):
        if tree.exists(candidate):
            return posixpath.normpath(candidate)
    matches = images_by_name.get(filename, [])
    if len(matches) == 1:
        return matches[0]
    where = "no image of that name" if not matches else f"{len(matches)} images of that name: {matches[:3]}"
    raise ValueError(f"{xml_path} names image {filename!r}: {where} in the set")


def _voc_split_names(tree, split):
    """Image stems (or file names) the split lists: ImageSets/Main/<split>.txt, or a
    <split>_labels.csv / <split>.txt file; None when `split` is None (every annotated image)."""
    if split is None:
        return None
    for path in tree.paths:
        base = posixpath.basename(path)
        if path.endswith(f"ImageSets/Main/{split}.txt") or base == f"{split}.txt":
            return [line.split()[0] for line in tree.read(path).decode().splitlines() if line.strip()]
        if base == f"{split}_labels.csv":
            rows = tree.read(path).decode().splitlines()[1:]
            return list(dict.fromkeys(row.split(",")[0] for row in rows if row.strip()))
    raise FileNotFoundError(f"no split {split!r} in data={tree.source!r}; found: {', '.join(voc_splits(tree))}")


def voc_splits(tree):
    """The split names a VOC set lists (ImageSets/Main/*.txt, *_labels.csv)."""
    found = set()
    for path in tree.paths:
        base = posixpath.basename(path)
        if "/ImageSets/Main/" in f"/{path}" and base.endswith(".txt"):
            found.add(base[:-4])
        elif base.endswith("_labels.csv"):
            found.add(base[: -len("_labels.csv")])
    return sorted(found)


def read_voc(tree, split=None, image_size=320, classes=None):
    """A `DetectionSet` of a Pascal VOC set (see `read_detections`)."""
    xml_paths = [p for p in tree.paths if p.endswith(".xml")]
    parsed = {p: _voc_objects(tree, p) for p in xml_paths}
    found_classes = sorted({name for _, _, objects in parsed.values() for name, _ in objects})
    classes = list(classes) if classes is not None else found_classes
    images_by_name = {}
    for path in tree.paths:
        if path.lower().endswith(IMAGE_SUFFIXES):
            images_by_name.setdefault(posixpath.basename(path), []).append(path)
    by_stem = {}
    for xml_path, (filename, _, _) in parsed.items():
        stem = posixpath.splitext(posixpath.basename(xml_path))[0]
        by_stem[stem] = by_stem[filename] = xml_path
    wanted = _voc_split_names(tree, split)
    if wanted is None:
        wanted = sorted(posixpath.splitext(posixpath.basename(p))[0] for p in xml_paths)
    missing = [name for name in wanted if name not in by_stem and posixpath.splitext(name)[0] not in by_stem]
    if missing:
        raise ValueError(
            f"split {split!r} of data={tree.source!r} lists {len(missing)} images without an annotation file, "
            f"e.g. {missing[:3]}"
        )
    sample = _Collector(image_size)
    for name in wanted:
        xml_path = by_stem.get(name) or by_stem[posixpath.splitext(name)[0]]
        filename, size, objects = parsed[xml_path]
        unknown = sorted({n for n, _ in objects} - set(classes))
        if unknown:
            raise ValueError(f"{xml_path}: unknown class {unknown[0]!r}; classes: {classes}")
        image_path = _image_beside(tree, xml_path, filename, images_by_name)
        image, (width, height) = _decode(tree.read(image_path), image_size)
        if size is not None and size != (width, height):
            raise ValueError(
                f"{xml_path}: <size> says {size[0]}x{size[1]}, the image {image_path} is {width}x{height}; "
                "its boxes cannot be trusted"
            )
        boxes = [box for _, box in objects]
        labels = [classes.index(n) for n, _ in objects]
        sample.add(image_path, image, *_clean_boxes(xml_path, boxes, labels, width, height, sample.skipped))
    return sample.result(classes)


# ---------------------------------------------------------------- YOLO


def _yolo_config(tree):
    """(path of the YAML, its dict) of a YOLO set: the YAML file with a `names` entry."""
    import yaml

    for path in tree.paths:
        if path.endswith((".yaml", ".yml")):
            config = yaml.safe_load(tree.read(path))
            if isinstance(config, dict) and "names" in config:
                return path, config
    raise ValueError(f"data={tree.source!r} has no YAML file with a 'names' entry (the YOLO class names)")


def yolo_splits(tree):
    """The split names of a YOLO set: its YAML's train/val/test keys."""
    _, config = _yolo_config(tree)
    return sorted(k for k in ("train", "val", "test") if config.get(k))


def _yolo_image_folder(tree, config_path, config, split):
    root = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), str(config.get("path") or ".")))
    folder = config.get(split) or f"images/{split}"
    folder = posixpath.normpath(posixpath.join(root, str(folder)))
    if not any(p.startswith(folder + "/") for p in tree.paths):
        raise FileNotFoundError(
            f"no split {split!r} in data={tree.source!r} (no images under {folder}/); found: "
            f"{', '.join(yolo_splits(tree)) or 'none'}"
        )
    return folder


def read_yolo(tree, split="train", image_size=320, classes=None):
    """A `DetectionSet` of a YOLO set (see `read_detections`). `classes` (names) keeps only
    boxes of those classes, renumbered in that order; the others are counted as skipped."""
    config_path, config = _yolo_config(tree)
    names = config["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    keep = list(classes) if classes is not None else names
    unknown = [c for c in keep if c not in names]
    if unknown:
        raise ValueError(f"classes={unknown} are not in {config_path}'s names: {names}")
    folder = _yolo_image_folder(tree, config_path, config, split)
    sample = _Collector(image_size)
    for image_path in (p for p in tree.paths if p.startswith(folder + "/") and p.lower().endswith(IMAGE_SUFFIXES)):
        label_path = posixpath.splitext(f"/{image_path}".replace("/images/", "/labels/", 1))[0][1:] + ".txt"
        image, (width, height) = _decode(tree.read(image_path), image_size)
        boxes, labels = [], []
        if not tree.exists(label_path):
            sample.skipped.setdefault("images without a label file (read as without objects)", []).append(image_path)
        else:
            for number, line in enumerate(tree.read(label_path).decode().splitlines(), 1):
                if not line.strip():
                    continue
                fields = line.split()
                try:
                    index, cx, cy, w, h = int(fields[0]), *map(float, fields[1:5])
                except (ValueError, IndexError):
                    raise ValueError(f"{label_path}:{number}: expected 'class cx cy w h', read {line!r}") from None
                if len(fields) != 5 or not 0 <= index < len(names):
                    raise ValueError(f"{label_path}:{number}: class id {fields[0]} (of {len(names)} names) in {line!r}")
                if names[index] not in keep:
                    sample.skipped.setdefault("boxes of other classes (skipped)", []).append(label_path)
                    continue
                boxes.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
                labels.append(keep.index(names[index]))
        sample.add(image_path, image, *_clean_boxes(label_path, boxes, labels, width, height, sample.skipped))
    return sample.result(keep)


class _Collector:
    def __init__(self, image_size):
        self.image_size = image_size
        self.images, self.boxes, self.labels, self.names, self.skipped = [], [], [], [], {}

    def add(self, name, image, boxes, labels):
        if len(boxes) == 0:
            self.skipped.setdefault(NO_OBJECTS, []).append(name)
        self.names.append(name)
        self.images.append(image)
        self.boxes.append(boxes)
        self.labels.append(labels)

    def result(self, classes):
        if not self.images:
            raise ValueError("the split has no images")
        images = np.stack(self.images)
        return DetectionSet(images, self.boxes, self.labels, list(classes), self.names, self.skipped)


# ---------------------------------------------------------------- either


def detection_format(tree):
    """ "yolo" (a YAML with class names and labels/ txt files) or "voc" (XML annotations)."""
    paths = tree.paths
    if any(p.endswith(".xml") for p in paths):
        return "voc"
    if any(p.endswith((".yaml", ".yml")) for p in paths) and any("/labels/" in f"/{p}" for p in paths):
        return "yolo"
    raise ValueError(
        f"data={tree.source!r} holds neither Pascal VOC XML annotations nor a YOLO set (a YAML of class names "
        "and labels/<split>/*.txt)"
    )


def is_detection_source(source):
    """Whether `source` is a folder or archive holding a VOC or YOLO detection set (reads
    file names only)."""
    import os
    import tarfile

    if os.path.isdir(source):
        paths = [os.path.join(root, name) for root, _, names in os.walk(source) for name in names]
    elif os.path.isfile(source) and tarfile.is_tarfile(source):
        with tarfile.open(source, "r:*") as archive:
            paths = archive.getnames()
    else:
        return False
    paths = ["/" + p.replace(os.sep, "/") for p in paths]
    return any(p.endswith(".xml") for p in paths) or (
        any(p.endswith((".yaml", ".yml")) for p in paths) and any("/labels/" in p for p in paths)
    )


def detection_evaluation_split(source, split=None):
    """`split` when `source` has it, else the first of val, validation, test it has."""
    from nlpool_keras.data.sources import EVALUATION_SPLITS

    found = detection_splits(source)
    if split is not None and split not in found or split is None and not set(EVALUATION_SPLITS) & set(found):
        wanted = repr(split) if split else f"an evaluation split ({', '.join(EVALUATION_SPLITS)})"
        raise FileNotFoundError(f"no split {wanted} in data={source!r}; found: {', '.join(found) or 'none'}")
    return split or next(name for name in EVALUATION_SPLITS if name in found)


def detection_splits(source):
    """The split names of a detection set (a folder or archive)."""
    tree = source if isinstance(source, FileTree) else FileTree(source)
    return voc_splits(tree) if detection_format(tree) == "voc" else yolo_splits(tree)


def read_detections(source, split=None, image_size=320, classes=None):
    """Reads one split of a detection set into a `DetectionSet`.

    Args:
        source: a folder or a .tar/.tar.gz archive holding either
            - a Pascal VOC set: `Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/<split>.txt`,
              or XML files beside (or in a folder next to) their images, with the split as
              `<split>.txt` or `<split>_labels.csv` (first column: file name); or
            - a YOLO set: `images/<split>/`, `labels/<split>/*.txt` (`class cx cy w h` as
              fractions), a YAML with `names` (list or {id: name}) and optional
              `train:`/`val:`/`test:` image folders.
        split: the split to read; None reads every annotated image (VOC only).
        image_size: every image is resized to (image_size, image_size).
        classes: the class names, in index order; default: a VOC set's names in sorted
            order, a YOLO set's YAML names. A YOLO set keeps only these classes' boxes.

    Returns:
        A `DetectionSet`.

    Example:
        >>> bccd = read_detections("../shared/data/bccd.tar.gz", "train", image_size=160)
        >>> bccd.classes
        ['Platelets', 'RBC', 'WBC']
    """
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer of at least 8, received: image_size={image_size!r}")
    tree = FileTree(source)
    if detection_format(tree) == "voc":
        return read_voc(tree, split, image_size, classes)
    if split is None:
        raise ValueError("a YOLO set is read one split at a time: give split= (e.g. 'train', 'val')")
    return read_yolo(tree, split, image_size, classes)
