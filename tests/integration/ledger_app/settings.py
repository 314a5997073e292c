"""Settings of the ledger project run by test_kafka_ledger.py.

What a test varies comes from the environment, as in ``worker_app/``:
``WORKER_BROKER_URL``, ``WORKER_APP_ID``, ``WORKER_OUTDIR``,
``WORKER_TOPIC_SUFFIX``, ``WORKER_STORE`` and ``WORKER_DATADIR``.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django_faust",
    "ledger",
]
DATABASES: dict = {}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

WORKER_OUTDIR = os.environ.get("WORKER_OUTDIR") or str(BASE_DIR / "out")
WORKER_TOPIC_SUFFIX = os.environ.get("WORKER_TOPIC_SUFFIX", "")

FAUST = {
    "APP_ID": os.environ.get("WORKER_APP_ID", "ledger"),
    "BROKER": os.environ.get("WORKER_BROKER_URL", "kafka://127.0.0.1:9092"),
    "STORE": os.environ.get("WORKER_STORE") or "memory://",
    "DATADIR": os.environ.get("WORKER_DATADIR") or os.path.join(WORKER_OUTDIR, "data"),
    "TOPIC_PARTITIONS": 4,
    "WEB_ENABLED": False,
    "BROKER_SESSION_TIMEOUT": 4.0,
    "BROKER_HEARTBEAT_INTERVAL": 1.0,
    "COMMIT_INTERVAL": 0.5,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
