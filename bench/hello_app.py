"""Reference for the benchmark: the smallest Flask + Waitress app returning a small JSON object."""

from common import serve_reference
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/hello")
def hello():
    return jsonify(hello="world")


if __name__ == "__main__":
    serve_reference(app)
