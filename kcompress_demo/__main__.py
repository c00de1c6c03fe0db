"""`python -m kcompress_demo`: the end-to-end demo (`make demo`)."""

from absl import app

from kcompress_demo.demo import main

if __name__ == "__main__":
    app.run(main)
