"""The main job and the reference task, outside the library.

- `kcompress_demo.reference`: scikit-learn's digits and the small CNN that
  every test, benchmark and notebook measures on (needs scikit-learn, from
  the `test` extra);
- `kcompress_demo.demo`: the end-to-end demo, `python -m kcompress_demo`:
  train, prune, QAT, int8 export with `tflite_export`, bench, report.

It uses both `kcompress` and `tflite_export`; neither imports it, so the
library's imports run one way (`tflite_export` -> `kcompress`).
"""
