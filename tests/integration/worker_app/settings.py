"""Settings of the tiny worker project run by test_kafka_workers.py.

Everything a test varies comes from the environment:

* ``WORKER_BROKER_URL``: the test broker (``kafka://127.0.0.1:PORT``);
* ``WORKER_APP_ID``: the app id, hence the consumer group (one per test);
* ``WORKER_OUTDIR``: where the agents append what they processed;
* ``WORKER_TOPIC_SUFFIX``: appended to the topic names ``events`` and
  ``clicks``, so tests sharing a broker do not read each other's topics;
* ``WORKER_EVENT_DELAY``: seconds the ``counted`` and ``tally`` agents sleep
  per event;
* ``WORKER_STORE``: the table store, ``memory://`` (default) or ``rocksdb://``;
* ``WORKER_DATADIR``: the data directory (RocksDB files); give each worker
  its own, as two worker machines would have;
* ``WORKER_PARTITIONS``: TOPIC_PARTITIONS (default 4, as the tests' topics);
* ``WORKER_POISON_POLICY``: POISON_POLICY (default ``dead_letter``);
* ``WORKER_REQUEST_TIMEOUT``: BROKER_REQUEST_TIMEOUT in seconds (default 30);
* ``WORKER_SHUTDOWN_TIMEOUT``: WORKER_SHUTDOWN_TIMEOUT in seconds (default 30);
* ``WORKER_WEB_PORT``: the worker's web port on 127.0.0.1 (the web tests);
  unset, the worker serves no web (and the project runs without DEBUG);
* ``WORKER_MEMORY_TABLE``: if set, ``tally`` also counts in a table kept in
  memory (``memory_counts``), whatever ``WORKER_STORE`` says;
* ``WORKER_PROCESSING_GUARANTEE``: PROCESSING_GUARANTEE (default at-least-once);
* ``WORKER_SESSION_TIMEOUT``: BROKER_SESSION_TIMEOUT (default 4 s; noida-db
  wants 6 s or more);
* ``WORKER_GROUP_INSTANCE_ID``: join as this static group member (KIP-345):
  a restarted worker replaces its killed predecessor at once (noida-db never
  drops a SIGKILLed member);
* ``WORKER_SINK``: if set, ``tally`` also sends each event's source offset and
  counts to ``tallied<suffix>`` (the exactly-once test reads it);
* ``WORKER_COMMIT_DELAY``: seconds each offset commit takes more (a slow
  broker), so that kills often land between a changelog flush and its commit.

The database is SQLite in ``WORKER_OUTDIR`` (``manage.py migrate`` first),
with persistent connections (``CONN_MAX_AGE = None``) as a long-running
worker would have; ``urls.py`` has the views the send tests call.

Session timeout and heartbeat are short so that a rebalance takes about two
seconds on the test broker and a SIGKILLed worker leaves the group quickly.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

WORKER_WEB_PORT = os.environ.get("WORKER_WEB_PORT")

SECRET_KEY = "tests-only"
# DEBUG opens django-faust's built-in views (stats, tables, ...).
DEBUG = bool(WORKER_WEB_PORT)
ROOT_URLCONF = "urls"
USE_TZ = True
INSTALLED_APPS = [
    # The admin: a web process without a worker shows the workers' tables.
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_faust",
    "counting.apps.CountingConfig",
]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
STATIC_URL = "static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

WORKER_OUTDIR = os.environ.get("WORKER_OUTDIR") or str(BASE_DIR / "out")
WORKER_TOPIC_SUFFIX = os.environ.get("WORKER_TOPIC_SUFFIX", "")
WORKER_EVENT_DELAY = float(os.environ.get("WORKER_EVENT_DELAY") or 0)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(WORKER_OUTDIR, "db.sqlite3"),
        "CONN_MAX_AGE": None,
        "OPTIONS": {"timeout": 20},
    }
}

FAUST = {
    "APP_ID": os.environ.get("WORKER_APP_ID", "worker-app"),
    "BROKER": os.environ.get("WORKER_BROKER_URL", "kafka://127.0.0.1:9092"),
    "STORE": os.environ.get("WORKER_STORE") or "memory://",
    "DATADIR": os.environ.get("WORKER_DATADIR") or os.path.join(WORKER_OUTDIR, "data"),
    "TOPIC_PARTITIONS": int(os.environ.get("WORKER_PARTITIONS") or 4),
    "WEB_ENABLED": bool(WORKER_WEB_PORT),
    "WEB_PORT": int(WORKER_WEB_PORT or 6066),
    "WEB_BIND": "127.0.0.1",
    "WEB_HOST": "127.0.0.1",
    "BROKER_SESSION_TIMEOUT": float(os.environ.get("WORKER_SESSION_TIMEOUT") or 4.0),
    "BROKER_HEARTBEAT_INTERVAL": 1.0,
    "COMMIT_INTERVAL": 0.5,
    "POISON_POLICY": os.environ.get("WORKER_POISON_POLICY") or "dead_letter",
    "PROCESSING_GUARANTEE": (
        os.environ.get("WORKER_PROCESSING_GUARANTEE") or "at_least_once"
    ),
    "BROKER_REQUEST_TIMEOUT": float(os.environ.get("WORKER_REQUEST_TIMEOUT") or 30),
    "WORKER_SHUTDOWN_TIMEOUT": float(os.environ.get("WORKER_SHUTDOWN_TIMEOUT") or 30),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
