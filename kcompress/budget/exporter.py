"""Where the budget search gets real files and measures them.

`kcompress` does not import TensorFlow or `tflite_export` (imports run the
other way). The search asks an *exporter* for files and measurements, found
by name among the `kcompress.exporters` entry points of the installed
packages: kcompress's own `tflite_export` registers `"litert"`
(`tflite_export.budget_export.LiteRTExporter`), which converts with the
TFLite converter and LiteRT's AI Edge Quantizer, runs files in LiteRT and
times them on the host, the emulated Raspberry Pi or a device. Any object
with the same four methods can be passed instead.
"""

from importlib import metadata

__all__ = ["get_exporter", "METHODS"]

GROUP = "kcompress.exporters"
METHODS = ("check_target", "convert", "predict", "latency_ms")


def get_exporter(exporter):
    """The exporter named `exporter` (an entry point), or `exporter` itself
    when it has the methods `METHODS`."""
    if not isinstance(exporter, str):
        missing = [m for m in METHODS if not callable(
            getattr(exporter, m, None))]
        if missing:
            raise ValueError(
                f"Received: exporter={exporter!r}, without {missing}. "
                f"Expected an exporter name ('litert') or an object with "
                f"the methods {METHODS}.")
        return exporter
    found = {e.name: e for e in metadata.entry_points(group=GROUP)}
    if exporter not in found:
        raise ValueError(
            f"Received: exporter={exporter!r}. Installed exporters: "
            f"{sorted(found) or 'none'}. 'litert' comes with kcompress's "
            "tflite_export package: reinstall kcompress (pip install -e .) "
            "so its entry point is registered.")
    return found[exporter].load()()
