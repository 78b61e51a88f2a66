"""Baseline for the benchmark only: the naive design that calls Prophet's predict on every request.

It is what a first version of this service looks like: load the pickle, forecast the one
requested day per request. Besides being slow, its interval for far dates is too narrow
(see artifact.forecast_table); it is measured here, never served.
"""

import logging
import os
import pickle  # nosec B403  # loads the model the benchmark just trained
import sys
from pathlib import Path

import pandas as pd
from common import ROOT, serve_reference
from flask import Flask, jsonify, request

sys.path.insert(0, str(ROOT))  # artifact/: which model file the metadata names
import artifact

logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


def create_app(model_path: Path) -> Flask:
    model = pickle.loads(model_path.read_bytes())  # noqa: S301  # nosec B301  # the benchmark's own model
    app = Flask(__name__)

    @app.get("/bitcoin")
    def bitcoin():
        day = pd.to_datetime(request.args["date"])
        forecast = model.predict(pd.DataFrame({"ds": [day]})).iloc[0]
        return jsonify(
            date=day.to_pydatetime(),
            prediction=forecast.yhat,
            prediction_low=forecast.yhat_lower,
            prediction_high=forecast.yhat_upper,
        )

    return app


if __name__ == "__main__":
    metadata_file = artifact.metadata_path(Path(os.environ["MODEL_DIR"]), "btc")
    serve_reference(create_app(artifact.model_path(metadata_file, artifact.read_metadata(metadata_file))))
