"""`tflite_export micro MODEL --representative=DATA --out=DIR`.

    tflite_export micro MODEL.keras|MODEL.tflite --representative=DATA
        --out=DIR [--verify=DATA] [--board=NAME] [--max_flash=SIZE]
        [--max_ram=SIZE] [--compress]

Writes the micro files into DIR and prints the report; exits 2 with one
line when the model does not fit the budget (the files are written, so the
report can be read). SIZE is bytes, or a number with KB or MB (binary:
1 KB = 1,024 bytes).
"""

import os
import re

from absl import flags

from tflite_export import command_inputs
from tflite_export.command_inputs import CliError
from tflite_export.errors import MicroError
from tflite_export.micro import boards
from tflite_export.micro.export import check_out_dir
from tflite_export.micro.export import micro_export
from tflite_export.micro.export import write

FLAGS = ("board", "max_flash", "max_ram", "compress")

_BOARD = flags.DEFINE_string(
    "board", None, "micro: the board to fit: " + ", ".join(sorted(
        boards.BOARDS)) + ".")
_MAX_FLASH = flags.DEFINE_string(
    "max_flash", None, "micro: flash budget for the model (bytes, KB, MB).")
_MAX_RAM = flags.DEFINE_string(
    "max_ram", None, "micro: RAM budget for the arena (bytes, KB, MB).")
_COMPRESS = flags.DEFINE_bool(
    "compress", False, "micro: store few-valued (clustered) kernels with "
    "TFLM's LUT compression.")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KIB|MB|MIB)?\s*$",
                   re.IGNORECASE)
_UNITS = {"B": 1, "KB": boards.KB, "KIB": boards.KB, "MB": boards.MB,
          "MIB": boards.MB}


def parse_size(text, flag):
    """`"256KB"` -> 262144; a CliError for anything else."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if not match:
        raise CliError(f"Received: --{flag}={text}. Expected a size in "
                       "bytes, KB or MB, such as 262144, 256KB or 1MB.")
    number, unit = match.groups()
    size = int(float(number) * _UNITS[(unit or "B").upper()])
    if size < 1:
        raise CliError(f"Received: --{flag}={text}. Expected a size >= 1 B.")
    return size


def _check_out(out, model_path):
    if not out:
        raise CliError("--out is required: the directory to write the micro "
                       "files into")
    check_out_dir(out)  # an OutputError: exit 2 like a CliError
    # Probes the directory (or, for a new one, its parent) for writing,
    # and refuses to write over the input model.
    target = os.path.join(out, "model.tflite") if os.path.isdir(out) else out
    command_inputs.check_writable(target, protected=(model_path,))


def micro_command(model_path, out, representative, verify):
    """Runs the command; the shared flags (`--out`, `--representative`,
    `--verify`) come from `cli`."""
    from tflite_export import data as data_lib
    from tflite_export.micro.report import markdown

    limits = dict(board=_BOARD.value,
                  max_flash=parse_size(_MAX_FLASH.value, "max_flash"),
                  max_ram=parse_size(_MAX_RAM.value, "max_ram"))
    try:
        boards.budget(**limits)
    except MicroError as error:
        raise CliError(str(error)) from None
    command_inputs.check_input(model_path, (".keras", ".tflite"))
    if not representative:
        raise CliError("--representative is required: DATA to calibrate the "
                       "int8 ranges and to size the arena")
    _check_out(out, model_path)
    if model_path.endswith(".tflite"):
        model = command_inputs.read_tflite(model_path)
        shape = None
    else:
        model = command_inputs.load_keras(model_path)
        shape = tuple(model.inputs[0].shape)
    x, _ = data_lib.load(representative, shape)
    check_x, labels = (x, None) if not verify else data_lib.load(verify,
                                                                 shape)
    result = micro_export(model, x, None, compress=_COMPRESS.value,
                          verify_data=check_x, labels=labels, **limits)
    os.makedirs(out, exist_ok=True)
    paths = write(result, out)
    print(markdown(result.to_dict()))
    print(f"Wrote {', '.join(os.path.basename(p) for p in paths)} in {out}.")
    if not result.fits:
        raise MicroError(boards.does_not_fit(result.fit))
