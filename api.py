"""Crypto Predict API: Prophet forecasts of daily crypto closes over HTTP.

``python api.py`` serves every model in ``$MODEL_DIR`` (default ``models``) with Waitress on
``$HOST:$PORT``; ``from api import create_app`` builds the same app (the ``serving`` package).
"""

import logging
import os
import sys

from artifact import DEFAULT_MODEL_DIR, ModelError
from serving import create_app
from serving.server import SettingError, serve, settings_from_env

__all__ = ["ModelError", "create_app", "main"]

log = logging.getLogger("api")


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> int:
    configure_logging()
    if os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR).strip() == "":  # it would mean the current folder
        log.error("MODEL_DIR is set but empty: set it to a folder, or unset it for %r", DEFAULT_MODEL_DIR)
        return 2
    # The server never plots, yet importing prophet imports matplotlib when it is installed (it is
    # a prophet dependency): about 0.7 s of every start, plus a font cache to rebuild in a
    # read-only container. A None entry makes that import fail, which prophet.plot allows for.
    sys.modules.setdefault("matplotlib", None)
    try:
        settings = settings_from_env()  # before the models load: a typo fails at once
        serve(create_app(), settings)
    except SettingError as error:
        log.error("%s", error)
        return 2
    except ModelError as error:
        log.error("cannot start: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
