"""The model artifact and the forecast it serves: the one definition that training, the backtest,
the API and the notebook share. Pure: numpy and pandas (and pickle) only. metadata.py holds the
format and its checks, pair.py reads and writes the files, forecast.py the contract and the maths.

The artifact is a pair of files per asset in the model folder (default ``models/``):

``<asset>.<sha256[:16]>.pkl`` (format 4; ``<asset>.pkl`` in formats 1 to 3)
    A pickled, fitted ``prophet.Prophet``, named by its content (:func:`model_file_name`). It is
    unpickled only after its sha256 matches the one its metadata names.
``<asset>.json``
    The metadata (:class:`Metadata`), format :data:`METADATA_FORMAT`; the API reads the formats
    in :data:`READABLE_FORMATS`. ``serve`` is the range of days the API answers. ``forecast``
    (:class:`ForecastContract`) says how the model's output becomes served USD prices:

    - ``target``: ``"close"`` (Prophet models the close) or ``"log_close"`` (it models the log
      close; outputs are exponentiated);
    - ``level_offset``: added to the model's output on days after the last training day, so that
      the forecast starts from the last close;
    - ``hold_trend``: after the last training day the trend stays at its value on that day;
    - ``interval``: ``null`` (serve Prophet's own 80% interval) or the calibrated interval
      (:class:`Interval`): at each ``horizon_days`` knot, ``lower`` and ``upper`` are
      log(bound / prediction); between knots they are interpolated linearly, past the last knot
      they grow like sqrt(h). ``width`` is :data:`SERVED_INTERVAL_WIDTH`.

    Metadata without ``forecast`` (format 1) means Prophet on the close, as it is.
    ``model_file`` (written since format 4) names the model file: a plain ``.pkl`` file name in
    the same folder (no path separator, not hidden). Metadata without it (formats 1 and 2)
    means ``<asset>.pkl``: readers go by the field, not by the format number.

The metadata is the pair's single commit point. :func:`write_pair` writes the new model file
under its own name first, then renames the new metadata over ``<asset>.json``, and only then
removes the asset's model files that no metadata names any more: a reader sees the old pair or
the new one, and a writer killed at any step leaves a loadable pair. :func:`read_pair` reads
the metadata, then the model it names, and reads again if a writer replaced the pair meanwhile.

Every day of the served range is forecast on one dense daily grid with a fixed seed
(:func:`forecast_table`): Prophet simulates future trend changes only at the rows it is asked
about, so this is the only way to honest far-future bands, and the same request always gets the
same answer. :func:`served_forecast` applies the contract.
"""

from artifact.forecast import (
    ForecastContract,
    Interval,
    check_interval,
    forecast_table,
    interval_bounds,
    interval_problem,
    known_days,
    served_forecast,
)
from artifact.metadata import (
    DEFAULT_MODEL_DIR,
    FORECAST_SEED,
    LEVELS,
    MAX_SERVED_DAYS,
    METADATA_FORMAT,
    MODEL_FILE_HASH_CHARS,
    READ_ATTEMPTS,
    READABLE_FORMATS,
    SERVED_INTERVAL_WIDTH,
    SERVED_LEVEL,
    Closes,
    Metadata,
    ModelError,
    ServedRange,
    check_metadata,
    check_model_file,
    closes_of,
    metadata_path,
    model_file_name,
    model_path,
    read_metadata,
    trained_at,
)
from artifact.pair import read_model, read_pair, write_pair

__all__ = [
    "DEFAULT_MODEL_DIR", "FORECAST_SEED", "LEVELS", "MAX_SERVED_DAYS", "METADATA_FORMAT",
    "MODEL_FILE_HASH_CHARS", "READABLE_FORMATS", "READ_ATTEMPTS", "SERVED_INTERVAL_WIDTH",
    "SERVED_LEVEL", "Closes", "ForecastContract", "Interval", "Metadata", "ModelError",
    "ServedRange", "check_interval", "check_metadata", "check_model_file", "closes_of",
    "forecast_table", "interval_bounds", "interval_problem", "known_days", "metadata_path", "model_file_name",
    "model_path", "read_metadata", "read_model", "read_pair", "served_forecast", "trained_at",
    "write_pair",
]  # fmt: skip
