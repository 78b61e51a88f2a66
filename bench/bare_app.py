"""Reference for the benchmark: a bare WSGI app answering fixed bytes, on api.py's own server.

No framework and no lookup: what remains is the server (Waitress with api.py's settings and
limits, serving/server.py), so /bitcoin's ratio to it says how close the fast path comes to
the server's own limit.
"""

from common import serve_reference

BODY = b'{"date":"Sat, 01 Jun 2024 00:00:00 GMT","prediction":0.0,"prediction_low":0.0,"prediction_high":0.0}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


if __name__ == "__main__":
    serve_reference(app)
