"""How a network down-samples: stage stride patterns and the pooling layer of each kind."""

import math

DOWNSAMPLE_KINDS = ("sa", "lip", "gaussian", "softpool", "max", "avg", "conv")
# where a strided stage's pooling layer sits: after its first block (which runs at stride 1), or
# on that block's input, before its expand and depthwise convs (the authors' LIP networks)
PLACEMENTS = ("after", "before")
POOL_LAYER_CLASSES = {
    "sa": "SelfAttentivePooling2D",
    "lip": "LocalImportancePooling2D",
    "gaussian": "GaussianPooling2D",
    "softpool": "SoftPooling2D",
}
# The self-attentive pooling paper's settings, one entry per stage.
PAPER_HEADS = {"mbv2": (2, 4, 8, 16, 32, 64, 128), "resnet": (4, 8, 16, 32)}
PAPER_REDUCED_PATCHES = {"mbv2": (4, 4, 4, 2, 2, 1, 1), "resnet": (4, 2, 1, 1)}
DEFAULT_POOL_KWARGS = {
    "num_heads": 2,
    "patch_size": "auto",
    "max_tokens": 144,
    "embed_ratio": 1.0,
    "window_norm": True,
    "token_grid": "ceil",
}
# the authors' MobileNetV2/ResNet settings by name: patch 1, r = 1, window normalisation, their
# token grid (a map a patch does not divide gives floor(h/p) tokens); heads 2, 4, 8, ... per stage
# or 2 everywhere ("headfix2"). Attention over every position: far from deployable on an MCU.
PAPER_POOL_KWARGS = {
    "paper": {"num_heads": "paper", "patch_size": 1, "embed_ratio": 1.0, "window_norm": True, "token_grid": "floor"},
    "paper-headfix2": {"num_heads": 2, "patch_size": 1, "embed_ratio": 1.0, "window_norm": True, "token_grid": "floor"},
}


def parse_strides(pattern, num_stages):
    """ "1222121" -> (1, 2, 2, 2, 1, 2, 1); one digit (1-9) per stage."""
    if not isinstance(pattern, str) or len(pattern) != num_stages or not all(c in "123456789" for c in pattern):
        raise ValueError(
            f"strides must be a string of {num_stages} digits 1-9 (one per stage), received: strides={pattern!r}"
        )
    return tuple(int(c) for c in pattern)


def check_kind(downsample):
    if downsample not in DOWNSAMPLE_KINDS:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_KINDS}, received: downsample={downsample!r}")
    return downsample


def resolve_pool_kwargs(pool_kwargs):
    """Defaults merged with the user's settings (a dict, or a name of `PAPER_POOL_KWARGS`);
    unknown keys are refused."""
    if isinstance(pool_kwargs, str):
        if pool_kwargs not in PAPER_POOL_KWARGS:
            raise ValueError(
                f"pool_kwargs must be a dict or one of {sorted(PAPER_POOL_KWARGS)}, "
                f"received: pool_kwargs={pool_kwargs!r}"
            )
        pool_kwargs = PAPER_POOL_KWARGS[pool_kwargs]
    pool_kwargs = dict(pool_kwargs or {})
    unknown = sorted(set(pool_kwargs) - set(DEFAULT_POOL_KWARGS))
    if unknown:
        raise ValueError(
            f"pool_kwargs has unknown keys {unknown}; known: {sorted(DEFAULT_POOL_KWARGS)}, "
            f"received: pool_kwargs={pool_kwargs!r}"
        )
    return {**DEFAULT_POOL_KWARGS, **pool_kwargs}


def _per_stage(value, stage, family, name, paper_table):
    """`value` for one stage: a per-stage name ("paper", "reduced") or tuple is indexed by
    `stage`; the prepool layer (stage None) belongs to no stage and needs a single value."""
    named = value in ("paper", "reduced")
    if (named or isinstance(value, (tuple, list))) and stage is None:
        raise ValueError(
            f"pool_kwargs['{name}']={value!r} gives one value per stage, and the prepool layer belongs to no "
            f"stage; give pool_kwargs['{name}'] as one int, or leave prepool=None"
        )
    if named:
        return paper_table[family][stage]
    if isinstance(value, (tuple, list)):
        if len(value) != len(paper_table[family]):
            raise ValueError(
                f"pool_kwargs['{name}'] needs one value per stage ({len(paper_table[family])}), received: {value!r}"
            )
        return value[stage]
    return value


def auto_patch_size(spatial, pool, max_tokens):
    """Smallest patch p with at most `max_tokens` tokens that does not make the layer
    average pooling (p a multiple of the window)."""
    height, width = spatial
    p = 1
    while math.ceil(height / p) * math.ceil(width / p) > max_tokens or p % pool == 0:
        p += 1
    return p


def sa_arguments(options, stage, family, spatial, stride, channels):
    """SelfAttentivePooling2D arguments for one stage (heads capped at the channel count)."""
    heads = _per_stage(options["num_heads"], stage, family, "num_heads", PAPER_HEADS)
    patch = options["patch_size"]
    if patch == "auto":
        patch = auto_patch_size(spatial, stride, options["max_tokens"])
    elif patch == "reduced":
        patch = PAPER_REDUCED_PATCHES[family][stage] if stage is not None else stride
    else:
        patch = _per_stage(patch, stage, family, "patch_size", PAPER_REDUCED_PATCHES)
    return {
        "num_heads": max(1, min(int(heads), int(options["embed_ratio"] * channels))),
        "patch_size": patch,
        "embed_ratio": options["embed_ratio"],
        "window_norm": options["window_norm"],
        "token_grid": options["token_grid"],
    }


def pooling_layer(kind, stride, name, framework, options, stage, family, spatial, channels):
    """The layer that down-samples by `stride` after a stride-1 block, or None for "conv"."""
    from nlpool_keras import frameworks
    from nlpool_keras.layers import get_layer_class

    if kind == "conv":
        return None
    if kind in ("max", "avg"):
        layer_cls = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}[kind]
        return getattr(frameworks.get(framework).keras.layers, layer_cls)(stride, padding="same", name=name)
    kwargs = {}
    if kind == "sa":
        kwargs = sa_arguments(options, stage, family, spatial, stride, channels)
    elif kind == "lip":
        kwargs = {"window_norm": options["window_norm"]}
    return get_layer_class(POOL_LAYER_CLASSES[kind], framework)(stride, padding="same", name=name, **kwargs)


def check_placement(placement):
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, received: placement={placement!r}")
    return placement


def check_prepool(prepool):
    if prepool is not None and (not isinstance(prepool, int) or isinstance(prepool, bool) or prepool < 1):
        raise ValueError(f"prepool must be None or a positive int stride, received: prepool={prepool!r}")
    return prepool


class Downsampler:
    """A network's down-sampling plan: stage strides, prepool, and its pooling layers.

    Args:
        kind, strides, prepool, pool_kwargs, framework, placement: the builder's arguments.
        num_stages: digits expected in `strides`.
        family: "mbv2" or "resnet" (selects the paper's per-stage settings).
    """

    def __init__(self, kind, strides, num_stages, prepool, pool_kwargs, framework, family, placement="after"):
        self.kind = check_kind(kind)
        self.placement = check_placement(placement)
        if kind == "conv" and placement == "before":
            raise ValueError(
                "placement='before' moves the pooling layer ahead of a strided block, and downsample='conv' "
                "has none (its strided blocks are the same in both placements); use placement='after', "
                f"received: downsample={kind!r}, placement={placement!r}"
            )
        self.stage_strides = parse_strides(strides, num_stages)
        self.prepool = check_prepool(prepool)
        self.options = resolve_pool_kwargs(pool_kwargs)
        self.framework, self.family = framework, family

    def stem_stride(self, standard=2):
        """The stem's stride: standard, or 1 before a prepool layer ("conv": the prepool stride)."""
        if self.prepool is None:
            return standard
        return self.prepool if self.kind == "conv" else 1

    def pools(self, stride, where=None):
        """Whether a block of this stride runs at stride 1 and hands the stride to a pooling layer
        (`where`: "after" or "before" the block, whether that layer sits there)."""
        return stride > 1 and self.kind != "conv" and where in (None, self.placement)

    def prepool_layer(self, x):
        return self(x, self.prepool, "prepool", None) if self.prepool is not None else x

    def __call__(self, x, stride, name, stage):
        """x down-sampled by a pooling layer of `stride` (unchanged for "conv")."""
        layer = pooling_layer(
            self.kind, stride, name, self.framework, self.options, stage, self.family, tuple(x.shape[1:3]), x.shape[-1]
        )
        return x if layer is None else layer(x)
