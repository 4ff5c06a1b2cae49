"""Detections drawn on their image: ground-truth boxes and the centroids or boxes a detector found."""

import numpy as np

COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def draw_centroids(ax, image, detections, boxes, labels, classes, title=None):
    """Draws on a matplotlib axis: the image, each ground-truth box (thin, its class's colour)
    and each detected centroid (a filled dot of its class's colour, white edge).

    Args:
        ax: a matplotlib Axes.
        image: uint8 (H, W, 3).
        detections: `decode_centroids` dicts (x, y as fractions).
        boxes: (K, 4) x0, y0, x1, y1 as fractions; labels: (K,); classes: class names.
        title: the axis title.
    """
    height, width = _draw_truth(ax, image, boxes, labels)
    for found in detections:
        colour = COLOURS[found["label"] % len(COLOURS)]
        ax.plot(found["x"] * width, found["y"] * height, "o", color=colour, markeredgecolor="white", markersize=5)
    _finish(ax, classes, title, [d["label"] for d in detections] + list(labels))


def draw_boxes(ax, image, detections, boxes, labels, classes, title=None, min_score=0.5):
    """As `draw_centroids`, for detected boxes (`decode_detections` dicts): each one scoring at
    least `min_score` as a thick dashed rectangle of its class's colour."""
    from matplotlib.patches import Rectangle

    height, width = _draw_truth(ax, image, boxes, labels)
    shown = [found for found in detections if found["score"] >= min_score]
    for found in shown:
        x0, y0, x1, y1 = found["box"]
        colour = COLOURS[found["label"] % len(COLOURS)]
        ax.add_patch(Rectangle((x0 * width, y0 * height), (x1 - x0) * width, (y1 - y0) * height, fill=False,
                               edgecolor=colour, linewidth=1.6, linestyle="--"))  # fmt: skip
    _finish(ax, classes, title, [d["label"] for d in shown] + list(labels))


def _draw_truth(ax, image, boxes, labels):
    """The image and its ground-truth boxes (thin, their class's colour); returns (height, width)."""
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    ax.imshow(image)
    for (x0, y0, x1, y1), label in zip(np.asarray(boxes).reshape(-1, 4), labels, strict=True):
        colour = COLOURS[int(label) % len(COLOURS)]
        ax.add_patch(Rectangle((x0 * width, y0 * height), (x1 - x0) * width, (y1 - y0) * height, fill=False,
                               edgecolor=colour, linewidth=0.8, alpha=0.7))  # fmt: skip
    return height, width


def _finish(ax, classes, title, used):
    """The legend of the classes drawn (`used` label indices), no axes, the title."""
    handles = [
        ax.plot([], [], "o", color=COLOURS[i % len(COLOURS)], label=classes[i])[0] for i in sorted(set(map(int, used)))
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=6, framealpha=0.6)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def save_detection_grid(path, images, detections, boxes, labels, classes, titles=None, columns=4, draw=None):
    """A PNG of panels, `columns` per row, each drawn by `draw` (per image, or one for all;
    default `draw_centroids`)."""
    from matplotlib.figure import Figure  # no pyplot: no backend, no global state

    rows = -(-len(images) // columns)
    figure = Figure(figsize=(2.6 * columns, 2.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index < len(images):
            title = titles[index] if titles else None
            painter = draw[index] if isinstance(draw, (list, tuple)) else draw or draw_centroids
            painter(ax, images[index], detections[index], boxes[index], labels[index], classes, title)
        else:
            ax.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
