"""The C header a firmware decodes an SSD-lite export's boxes with (`programs/ssd_boxes.h`):
the anchor table and the decoding settings of export.json's "decoding"."""

import os

from nlpool_keras.detection import anchors as anchor_lib
from nlpool_keras.firmware.errors import FirmwareError

HEADER = "ssd_decoding.h"


def _literal(value):
    return repr(float(value))  # shortest text that reads back as the same double (and float32)


def write_ssd_header(decoding, folder):
    """Writes `ssd_decoding.h` into `folder` for an export's SSD-lite "decoding"; returns its path.

    The anchors are `detection.ssdlite_anchors` of the export's input size; an export whose
    recorded anchor settings differ from this version's is refused rather than decoded wrongly.
    """
    for key, constant in (
        ("feature_strides", anchor_lib.FEATURE_STRIDES),
        ("anchor_scales", anchor_lib.ANCHOR_SCALES),
        ("aspect_ratios", anchor_lib.ASPECT_RATIOS),
        ("variances", anchor_lib.VARIANCES),
    ):
        if tuple(decoding[key]) != tuple(constant):
            raise FirmwareError(f"the export's {key}={decoding[key]} differ from this version's {list(constant)}")
    anchors = anchor_lib.ssdlite_anchors(decoding["input_size"])
    if len(anchors) != decoding["anchors"]:
        raise FirmwareError(f"the export has {decoding['anchors']} anchors, its input size gives {len(anchors)}")
    rows = ",\n".join("  {" + ", ".join(_literal(v) for v in anchor) + "}" for anchor in anchors)
    variance_centre, variance_size = decoding["variances"]
    settings = [
        "nlpool_ssd_anchors", "kSsdAnchors", "kSsdChannels", _literal(decoding["scale"]), decoding["zero_point"],
        _literal(variance_centre), _literal(variance_size), _literal(decoding["score_threshold"]),
        _literal(decoding["nms_iou"]), "kSsdCandidates", "kSsdMaxDetections",
    ]  # fmt: skip
    text = f"""// Written by nlpool firmware from export.json's "decoding": SSD-lite anchors and settings.
#ifndef NLPOOL_SSD_DECODING_H_
#define NLPOOL_SSD_DECODING_H_
#include "ssd_boxes.h"

constexpr int32_t kSsdAnchors = {len(anchors)}, kSsdChannels = {decoding["channels"]};
constexpr int32_t kSsdCandidates = {decoding["candidates"]}, kSsdMaxDetections = {decoding["max_detections"]};
static const float nlpool_ssd_anchors[kSsdAnchors][4] = {{
{rows}
}};
static const NlpoolSsd nlpool_ssd = {{{", ".join(map(str, settings))}}};

#endif  // NLPOOL_SSD_DECODING_H_
"""
    path = os.path.join(folder, HEADER)
    with open(path, "w") as f:
        f.write(text)
    return path
