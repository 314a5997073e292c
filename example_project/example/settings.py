"""Settings of the django-faust example project.

Everything runs in one process with no services to install: the broker and
the table store are in memory, and no view touches the database, so there
is nothing to migrate before ``manage.py faust worker`` for the order form
and the live dashboard (``/orders/dashboard/``). The admin (``/admin/``:
tables, their keys, the workers) needs ``manage.py migrate`` and
``manage.py createsuperuser`` first, as does the ``StoredOrder`` model (the
publish-on-commit recipe in ``orders/signals.py``).
"""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Development only: never use this key or DEBUG=True in production.
SECRET_KEY = "django-insecure-example-project-do-not-use-in-production"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_faust",
    # Apps with agents: django_faust imports their agents.py, tables.py and
    # views.py at startup (FAUST["AUTODISCOVER_MODULES"]).
    "orders",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
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
STATIC_URL = "static/"

ROOT_URLCONF = "example.urls"
ASGI_APPLICATION = "example.asgi.application"

# The order form and the dashboard never query the database; the admin's
# users and sessions live in this SQLite file (`manage.py migrate`).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

FAUST = {
    "APP_ID": "example",
    # In-memory broker and tables: one process, nothing to install. Events
    # and table contents are lost when the worker stops.
    "BROKER": "memory://",
    "STORE": "memory://",
    "TOPIC_PARTITIONS": 4,
    # The worker also serves this project's views on this port.
    "WEB_ENABLED": True,
    "WEB_PORT": 6066,
    # For production, point at Kafka and keep tables in RocksDB
    # (pip install 'django-faust[rocksdb]'):
    #
    #   "BROKER": "kafka://kafka-1:9092;kafka-2:9092",
    #   "STORE": "rocksdb://",
    #   "TOPIC_REPLICATION_FACTOR": 3,
}

# The worker logs to stderr through the root logger (its level set by
# `manage.py faust worker -l ...`). Let Django's own messages go there too,
# instead of also through Django's default console handler, which would
# print each of them twice.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
