"""Generates TinyEngine's C code for an int8 .tflite (run in TinyEngine's own environment).

    python tinyengine_codegen.py TINYENGINE_DIR MODEL.tflite OUT_DIR [--patches N --split K]

Writes OUT_DIR/codegen/{Include,Source} (TinyEngine's code generator writes under the working
folder) and OUT_DIR/codegen.json: the activation buffer's bytes as the memory scheduler sized it.
The requantization is TFLite's integer one unless --fp-requantize (TinyEngine's float
requantization, which gives other outputs); with --patches, the first K layers run patch by patch in
N x N patches (MCUNetV2's patch-based inference), the rest on the whole map.
"""

import argparse
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tinyengine")
    parser.add_argument("tflite")
    parser.add_argument("out")
    parser.add_argument("--patches", type=int, default=0, help="N: N x N patches (0: the whole map)")
    parser.add_argument("--split", type=int, default=0, help="K: layers run patch by patch")
    parser.add_argument("--fp-requantize", action="store_true", help="TinyEngine's float requantization")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.tinyengine))
    tflite = os.path.abspath(args.tflite)
    os.makedirs(args.out, exist_ok=True)
    os.chdir(args.out)

    from code_generator.CodeGenerator import CodeGenerator
    from code_generator.GeneralMemoryScheduler import GeneralMemoryScheduler
    from code_generator.InputResizer import PatchResizer
    from code_generator.PatchBasedUtil import getPatchParams
    from code_generator.TfliteConvertor import TfliteConvertor

    convertor = TfliteConvertor(tflite)
    convertor.parseOperatorInfo()
    layers = convertor.layer
    patch_params = None
    if args.patches:
        patch_params = getPatchParams(layers, args.split, args.patches)
        PatchResizer(layers).patchResize(
            patch_params["layer_cnt"], patch_params["grain_rf"], patch_params["grain_rf_height"]
        )
    scheduler = GeneralMemoryScheduler(
        layers, False, False, outputTables=[], inplace=True, mem_visual_path="lifecycle.png", VisaulizeTrainable=False
    )
    scheduler.USE_INPLACE = True
    scheduler.allocateMemory()
    CodeGenerator(
        memsche=scheduler,
        inplace=True,
        unsigned_input=False,
        patch_params=patch_params,
        FP_output=False,
        profile_mode=False,
        fp_requantize=args.fp_requantize,
        tflite_op=False,
        dummy_address=False,
        outputTables=[],
    ).codeGeneration()
    with open("codegen.json", "w") as f:
        params = {k: int(v) for k, v in (patch_params or {}).items()}
        json.dump({"activation_bytes": int(scheduler.buffers["input_output"]), "patch_params": params}, f)


if __name__ == "__main__":
    main()
