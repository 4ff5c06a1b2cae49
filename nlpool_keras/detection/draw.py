"""Detections drawn on their image: ground-truth boxes and the centroids a detector found."""

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
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    ax.imshow(image)
    for (x0, y0, x1, y1), label in zip(np.asarray(boxes).reshape(-1, 4), labels, strict=True):
        colour = COLOURS[int(label) % len(COLOURS)]
        ax.add_patch(Rectangle((x0 * width, y0 * height), (x1 - x0) * width, (y1 - y0) * height, fill=False,
                               edgecolor=colour, linewidth=0.8, alpha=0.7))  # fmt: skip
    for found in detections:
        colour = COLOURS[found["label"] % len(COLOURS)]
        ax.plot(found["x"] * width, found["y"] * height, "o", color=colour, markeredgecolor="white", markersize=5)
    handles = [ax.plot([], [], "o", color=COLOURS[i % len(COLOURS)], label=name)[0] for i, name in enumerate(classes)]
    ax.legend(handles=handles, loc="lower right", fontsize=6, framealpha=0.6)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def save_detection_grid(path, images, detections, boxes, labels, classes, titles=None, columns=4):
    """A PNG of `draw_centroids` panels, `columns` per row."""
    from matplotlib.figure import Figure  # no pyplot: no backend, no global state

    rows = -(-len(images) // columns)
    figure = Figure(figsize=(2.6 * columns, 2.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index < len(images):
            title = titles[index] if titles else None
            draw_centroids(ax, images[index], detections[index], boxes[index], labels[index], classes, title)
        else:
            ax.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
