import os
import shutil
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ARCHIVE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenette128_q90.tar.gz")


def randomize(layer, seed=0):
    """Sets every weight of a built layer to random values (variances positive)."""
    rng = np.random.default_rng(seed)
    values = []
    variables = layer.ordered_weights() if hasattr(layer, "ordered_weights") else layer.weights
    for weight in variables:
        shape = tuple(weight.shape)
        name = getattr(weight, "path", weight.name)
        if "variance" in name:
            values.append(rng.uniform(0.5, 2.0, shape))
        elif "gamma" in name:
            values.append(rng.uniform(0.5, 1.5, shape))
        else:
            values.append(rng.normal(0.0, 0.5, shape))
    layer.set_weights([v.astype("float32") for v in values])


def sub_weights(layer, *names):
    """{name: list of arrays} of sub-layers, float64."""
    return {name: [np.asarray(v, "float64") for v in getattr(layer, name).get_weights()] for name in names}


@pytest.fixture(scope="session")
def real_images():
    """40 real Imagenette val images (4 per class), 32 x 32, uint8, and labels."""
    from nlpool_keras.data import read_image_archive

    images, labels, _ = read_image_archive(ARCHIVE, split="val", per_class=4, image_size=32)
    return images, labels


@pytest.fixture(scope="session")
def images(real_images):
    """`real_images` as float32 pixels, and the labels."""
    return real_images[0].astype("float32"), real_images[1]


def write_tiny_voc(root, count=8, size=64):
    """A Pascal VOC tree of `count` size x size images, each with one 16-pixel red square (class
    "spot") on grey; the last two images are the val split."""
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(f"{root}/JPEGImages")
    os.makedirs(f"{root}/Annotations")
    os.makedirs(f"{root}/ImageSets/Main")
    for k in range(count):
        image = np.full((size, size, 3), 30, np.uint8)
        x, y = (int(v) for v in rng.integers(4, size - 20, 2))
        image[y : y + 16, x : x + 16] = (220, 40, 40)
        Image.fromarray(image).save(f"{root}/JPEGImages/{k}.png")
        with open(f"{root}/Annotations/{k}.xml", "w") as f:
            f.write(
                f"<annotation><filename>{k}.png</filename><size><width>{size}</width><height>{size}</height></size><object>"
                f"<name>spot</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x + 16}</xmax><ymax>{y + 16}</ymax>"
                "</bndbox></object></annotation>"
            )
    for split, names in (("train", range(count - 2)), ("val", range(count - 2, count))):
        with open(f"{root}/ImageSets/Main/{split}.txt", "w") as f:
            f.write("\n".join(map(str, names)))


def compile_tree_driver(folder, source, tree_args=lambda tree: []):
    """Compiles the C++ `source` with the host's compiler against the prepared TFLM tree (its root
    on the include path, `tree_args(tree)` after it) into `folder`; returns the binary's path.
    Skips when the machine has no C++ compiler (scripts/setup_firmware.sh installs g++)."""
    from nlpool_keras.firmware.tree import prepare_tree

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine (scripts/setup_firmware.sh installs g++)")
    tree = prepare_tree()
    path, binary = os.path.join(folder, "driver.cc"), os.path.join(folder, "driver")
    with open(path, "w") as f:
        f.write(source)
    subprocess.run([compiler, "-std=c++17", "-O1", "-I", tree, path, *tree_args(tree), "-o", binary], check=True)
    return binary
