"""What `train` does differently per task: data, model, loss, batches and the held-out metric.

A task reads its data once (`__init__`) and then gives the training loop everything it needs:
`build()`, `loss()`/`metrics`, `batches(epoch)`, `calibration(count)` (image batches for
re-estimating BatchNorm statistics) and `evaluate(model)` (the held-out metric, higher is
better, named `metric`).
"""

import numpy as np

from nlpool_keras.data import evaluation_split
from nlpool_keras.data.pipeline import batch_dataset, cached_split, epoch_dataset
from nlpool_keras.train.batchnorm import calibration_batches

TASKS = ("classification", "detection")
HEADS = ("centroids", "ssdlite")  # the detector heads of task="detection"
HEAD_OUTPUTS = {"centroid_scores": "centroids", "ssd_outputs": "ssdlite"}  # the output layer of each head's builder


def detector_head(model):
    """The head ("centroids", "ssdlite") of a zoo detector (Keras 3 or tf_keras, QAT included),
    from its output layer's name; None for any other model."""
    name = model.output_names[0].removeprefix("quant_")  # a quantization-aware copy's wrapper
    return next((head for layer, head in HEAD_OUTPUTS.items() if name == layer or name.startswith(layer + "_")), None)


def head_encoder(head, image_size, box_core=0.0):
    """The target of one image, `encode(boxes, labels)`, that detector `head` trains on."""
    from nlpool_keras.detection import box_targets, centroid_targets, ssdlite_anchors

    if head == "centroids":
        return lambda boxes, labels: centroid_targets(boxes, labels, image_size // 8, box_core)
    anchors = ssdlite_anchors(image_size)
    return lambda boxes, labels: box_targets(boxes, labels, anchors)


def head_loss(head, object_weight=10.0):
    """The loss detector `head` trains with."""
    from nlpool_keras.train.losses import CentroidLoss, SSDLoss

    return CentroidLoss(object_weight) if head == "centroids" else SSDLoss()


def detection_scores(head, outputs, data, image_size):
    """The metric report (`detection.heads.score_detections`) of a head's float outputs on a
    `DetectionSet`."""
    from nlpool_keras.detection.heads import decode_float, score_detections

    found = decode_float(head, outputs, image_size)
    return score_detections(head, found, data, grid=outputs.shape[1], image_size=image_size)


MODELS = ("mbv2", "resnet18")


class Classification:
    """Image classification: top-1 on resize + centre-crop images of the evaluation split."""

    metric = "val_top1"
    metrics = ("accuracy",)

    def __init__(self, config):
        self.config = config
        self.x_train, self.y_train, self.classes = cached_split(
            config.data, "train", config.per_class, None, config.data_dir
        )
        self.val_split = evaluation_split(config.data, config.val_split, config.data_dir)
        self.x_val, self.y_val, _ = cached_split(
            config.data, self.val_split, config.val_per_class, None, config.data_dir
        )

    def build(self):
        return build_model(self.config, len(self.classes))

    def loss(self):
        import keras

        return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.config.label_smoothing)

    def batches(self, epoch):
        config, one_hot = self.config, np.eye(len(self.classes), dtype="float32")
        return epoch_dataset(
            self.x_train, one_hot[self.y_train], config.image_size, config.batch_size, config.seed, epoch,
            workers=config.workers,
        )  # fmt: skip

    def calibration(self, count):
        return calibration_batches(self.x_train, self.config.image_size, self.config.seed, count)

    def evaluate(self, model, batch_size=128):
        config = self.config
        data = epoch_dataset(self.x_val, self.y_val, config.image_size, batch_size, config.seed, 0, train=False)
        return float(np.mean(model.predict(data, verbose=0).argmax(axis=1) == self.y_val))


class Detection:
    """What both detector heads share: VOC or YOLO data (`data.read_detections`), images
    stored at twice the input size for random crops, box-aware augmentation, prediction of the
    evaluation images; a subclass names its `head` (`head_encoder`, `head_loss`,
    `detection_scores`) and `metric`."""

    metrics = ()
    STORED_SCALE = 2  # images are kept at twice the input size, for random crops

    def __init__(self, config):
        from nlpool_keras.data.detection import detection_evaluation_split, read_detections
        from nlpool_keras.data.sources import check_source

        self.config = config
        check_source(config.data)
        self.val_split = detection_evaluation_split(config.data, config.val_split)
        only = config.only_classes.split(",") if config.only_classes else None
        size = config.image_size * self.STORED_SCALE
        self.train_set = read_detections(config.data, "train", size, only)
        self.val_set = read_detections(config.data, self.val_split, config.image_size, self.train_set.classes)
        self.classes = self.train_set.classes
        self.x_train, self.x_val = self.train_set.images, self.val_set.images
        self.encode = head_encoder(self.head, config.image_size, config.box_core)

    def loss(self):
        return head_loss(self.head, self.config.object_weight)

    def scores(self, outputs):
        """`detection_scores` of the float outputs of the evaluation images."""
        return detection_scores(self.head, outputs, self.val_set, self.config.image_size)

    def build(self):
        return build_model(self.config, len(self.classes))

    def _batches(self, data, epoch, train, batch_size):
        from nlpool_keras.data.box_augment import DetectionBatches

        config = self.config
        return DetectionBatches(data, config.image_size, batch_size, config.seed, epoch, self.encode, train)

    def batches(self, epoch):
        batches = self._batches(self.train_set, epoch, True, self.config.batch_size)
        return batch_dataset(batches, self.config.workers)

    def calibration(self, count, batch_size=64):
        batches = self._batches(self.train_set, 0, False, batch_size)
        for b in range(min(len(batches), -(-count // batch_size))):
            yield batches[b][0]

    def evaluate(self, model, batch_size=64):
        return self.scores(self.predict(model, batch_size))[self.metric.removeprefix("val_")]

    def predict(self, model, batch_size=64):
        batches = self._batches(self.val_set, 0, False, batch_size)
        return np.concatenate([model.predict(batches[b][0], verbose=0) for b in range(len(batches))])


class CentroidDetection(Detection):
    """Centroid detection (`build_centroid_detector`): F1 of centroids matched within
    `detection.MATCH_CELLS` cells of a box centre of their class, decoded at `detection.THRESHOLD`."""

    head = "centroids"
    metric = "val_f1"


class SSDLiteDetection(Detection):
    """SSD-lite detection (`build_ssdlite_detector`): COCO box AP@0.5 (pycocotools) of the
    decoded, non-maximum-suppressed boxes; the report also has mAP@[.5:.95]."""

    metric = "val_ap50"
    head = "ssdlite"


def build_model(config, classes):
    """The untrained model of a `TrainConfig` with `classes` classes (`loading` rebuilds runs with it)."""
    from nlpool_keras.models import build_centroid_detector, build_mbv2_sa, build_resnet18_sa, build_ssdlite_detector

    if config.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, received: model={config.model!r}")
    if config.task == "detection":
        if config.model != "mbv2":
            raise ValueError(f"task='detection' builds on model='mbv2', received: model={config.model!r}")
        builder = build_centroid_detector if config.head == "centroids" else build_ssdlite_detector
        return builder(classes=classes, backbone_weights=config.backbone_weights, **config.builder_arguments())
    if config.backbone_weights is not None:
        raise ValueError(f"backbone_weights applies to task='detection', received: {config.backbone_weights!r}")
    builder = build_mbv2_sa if config.model == "mbv2" else build_resnet18_sa
    return builder(**config.builder_arguments(), classes=classes, classifier_activation=None)


def make_task(config):
    """The task object of a `TrainConfig`."""
    if config.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, received: task={config.task!r}")
    if config.task == "classification":
        return Classification(config)
    if config.head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, received: head={config.head!r}")
    return CentroidDetection(config) if config.head == "centroids" else SSDLiteDetection(config)
