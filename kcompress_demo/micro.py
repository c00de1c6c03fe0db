"""The microcontroller example: digits on a 256 KB-RAM board.

`python -m kcompress_demo.micro` trains the reference digits CNN (or the
MobileNetV2-style one, `--model=mobilenet_v2_style`), clusters its weights
to 16 values per kernel in `fit`, runs cluster-preserving QAT, and exports
it for TensorFlow Lite Micro with LUT-compressed kernels, checked against
the Arduino Nano 33 BLE Sense (1 MB flash, 256 KB RAM). It prints the
micro report: flash before and after compression, the arena TFLM
measured, the fit, and TFLM's answers against LiteRT's and Keras's.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

MODELS = ("digits_cnn", "mobilenet_v2_style")


def build(name, seed=0):
    """The float model `name` (one of `MODELS`), untrained."""
    from kcompress_demo import reference
    from kcompress_demo import residual

    if name == "digits_cnn":
        return reference.reference_cnn(seed)
    if name == "mobilenet_v2_style":
        return residual.mobilenet_v2_style(seed=seed)
    raise ValueError(f"Received: name={name!r}. Expected one of "
                     f"{', '.join(MODELS)}.")


def clustered_qat(model, data, clusters=16, epochs=2):
    """`model` clustered to `clusters` values per kernel in `fit`, stripped,
    then cluster-preserving QAT for `epochs` epochs: the QAT model."""
    import kcompress as kc
    from kcompress_demo import reference

    clustered = reference.fit(
        kc.clustering.cluster_weights(model, number_of_clusters=clusters),
        data, epochs)
    stripped = kc.clustering.strip_clustering(clustered)
    return reference.fit(kc.quantize_model(stripped, preserve_clusters=True),
                         data, epochs)


def run(name, clusters, epochs, fine_tune_epochs, board, out_dir,
        print_fn=print):
    """Trains, clusters, QATs and exports `name`; returns the
    `MicroExport` of the compressed file."""
    from kcompress_demo import reference
    from tflite_export.micro import micro_export
    from tflite_export.micro.report import markdown

    data = reference.load_digits_split()
    print_fn(f"1/3 Training {name} for {epochs} epochs...")
    model = reference.fit(build(name), data, epochs)
    print_fn(f"2/3 Clustering to {clusters} values per kernel, then "
             f"cluster-preserving QAT, {fine_tune_epochs} epochs each...")
    qat = clustered_qat(model, data, clusters, fine_tune_epochs)
    print_fn("3/3 Exporting for TFLM (LUT-compressed), measuring the arena "
             "with TFLM's own interpreter...\n")
    result = micro_export(qat, data.x_train[:200], out_dir, board=board,
                          compress=True, verify_data=data.x_test,
                          labels=data.y_test, name=name)
    print_fn(markdown(result.to_dict()))
    print_fn(f"Files in {os.path.abspath(out_dir)}.")
    return result


def _define_flags():
    # Only when run as a program: the names (--board) are also
    # `tflite_export micro`'s, and absl's flags are global.
    flags.DEFINE_enum("model", "digits_cnn", list(MODELS),
                      "The model to train and export.")
    flags.DEFINE_integer("clusters", 16, "Distinct values per kernel.",
                         lower_bound=2)
    flags.DEFINE_integer("epochs", 8, "Float training epochs.",
                         lower_bound=1)
    flags.DEFINE_integer("fine_tune_epochs", 2,
                         "Clustering epochs, then as many CQAT.",
                         lower_bound=1)
    flags.DEFINE_string("board", "arduino-nano-33-ble-sense",
                        "The board to fit (tflite_export.micro.BOARDS).")
    flags.DEFINE_string("out_dir", "kcompress_micro_out",
                        "Where the micro files go.")


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        print(f"micro demo: unexpected arguments {argv[1:]}", file=sys.stderr)
        sys.exit(2)
    values = flags.FLAGS
    run(values.model, values.clusters, values.epochs, values.fine_tune_epochs,
        values.board, values.out_dir)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
