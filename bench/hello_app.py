"""Reference for the benchmark: the smallest Flask + Waitress app returning a small JSON object."""

import logging
import os

from flask import Flask, jsonify
from waitress import serve

app = Flask(__name__)


@app.get("/hello")
def hello():
    return jsonify(hello="world")


if __name__ == "__main__":
    # Same server and logging settings as api.py, so the comparison is about the request path alone.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    serve(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        threads=int(os.environ.get("THREADS", "16")),  # api.py's default
        ident="",
    )
