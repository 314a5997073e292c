"""Django settings for the test suite."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only"
DEBUG = True
USE_TZ = True
ROOT_URLCONF = "tests.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_faust",
    "tests.testapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
FAUST = {
    "APP_ID": "tests",
    "BROKER": "memory://",
    "STORE": "memory://",
    "TOPIC_PARTITIONS": 4,
    "WEB_ENABLED": False,
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
