"""``manage.py faust ...`` run in a subprocess, as a user runs it.

These use the example project, so they also prove the README's first command
works: the project starts on the embedded memory broker with nothing else
installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_project"

pytestmark = pytest.mark.slow


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no test settings leaking in."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def manage(*args: str, timeout: float = 60, env: dict | None = None, **kw):
    return subprocess.run(
        [sys.executable, "manage.py", "faust", *args],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=user_env(**(env or {})),
        **kw,
    )


def test_help_lists_builtin_and_project_commands():
    result = manage("--help")
    assert result.returncode == 0, result.stderr
    for name in ("worker", "send", "agents", "models", "model", "simulate"):
        assert f"  {name}" in result.stdout


@pytest.mark.parametrize("command", ["worker", "send", "agents", "models", "model"])
def test_every_command_has_help(command):
    result = manage(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_agents_lists_the_project_agents():
    result = manage("agents", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["@process_order"]["topic"] == "orders"
    assert rows["@notify"]["topic"] == "notifications"


def test_models_and_model_show_records():
    result = manage("models")
    assert result.returncode == 0, result.stderr
    assert "orders.records.Order" in result.stdout
    result = manage("model", "Order", "--json")
    assert result.returncode == 0, result.stderr
    fields = {row["field"]: row for row in json.loads(result.stdout)}
    assert set(fields) >= {"account", "product", "amount"}
    assert fields["amount"]["type"] == "int"


def test_model_with_unknown_name_is_a_clear_error():
    result = manage("model", "Nope")
    assert result.returncode != 0
    assert "No model named 'Nope'" in result.stderr


def test_send_to_an_agent_runs_it_on_the_memory_broker():
    order = json.dumps({"account": "zoe", "product": "pen", "amount": 80})
    result = manage("send", "@process_order", order, "--key", "zoe")
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout.strip().splitlines()[-1])
    assert sent["topic"] == "orders" and sent["offset"] == 0
    # The agent processed it here, and passed the big order on.
    assert "zoe bought pen for 80" in result.stderr
    assert "Notify zoe" in result.stderr


def test_send_repeat_and_partition():
    result = manage(
        "send",
        "orders",
        '{"account": "a", "product": "b", "amount": 1}',
        "--repeat",
        "3",
        "--partition",
        "2",
    )
    assert result.returncode == 0, result.stderr
    sent = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(s["partition"], s["offset"]) for s in sent] == [(2, 0), (2, 1), (2, 2)]


def test_send_to_an_unknown_agent_names_the_known_ones():
    result = manage("send", "@nope", "1")
    assert result.returncode == 2
    assert "No agent named 'nope'" in result.stderr
    assert "@process_order" in result.stderr


def test_project_command_runs():
    result = manage("simulate", "--count", "5")
    assert result.returncode == 0, result.stderr
    counts = sum(int(line.split()[1]) for line in result.stdout.strip().splitlines())
    assert counts == 5


def test_worker_refuses_to_start_on_bad_settings():
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.e2e.bad_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE)]),
    }
    result = manage("worker", env=env)
    assert result.returncode != 0
    assert "TOPIC_PARTITONS" in result.stderr
    assert "TOPIC_PARTITIONS" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_processes_events_and_stops_cleanly_on_signal(signum):
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "faust", "worker", "--without-web", "-l", "info"],
        cwd=EXAMPLE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=user_env(),
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Order:" in line:  # the timer's order reached the agent
                break
        else:
            raise AssertionError("no order processed:\n" + "".join(lines))
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "finishing in-flight events" in out
    assert "Worker stopped." in out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, data: bytes | None = None) -> tuple[int, str, str]:
    """(status, final URL after redirects, body) of a request to the worker."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, url, error.read().decode()


def test_the_worker_serves_the_site_pages_and_faust_views():
    """README's first command: the site, the dashboard, /faust/ and the admin."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "faust", "worker", "--web-port", str(port)],
        cwd=EXAMPLE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=user_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _http(f"{base}/faust/health/ready/")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker never became ready"
            time.sleep(0.2)

        status, url, body = _http(f"{base}/")
        assert (status, url) == (200, f"{base}/orders/dashboard/")
        assert _http(f"{base}/orders/")[0] == 200
        assert _http(f"{base}/orders/dashboard/")[0] == 200
        status, _, body = _http(f"{base}/faust/stats/")
        assert status == 200 and json.loads(body)["app_id"] == "example"
        status, url, body = _http(f"{base}/admin/")
        assert status == 200 and "/admin/login/" in url, url

        # The @app.page + @app.table_route of orders/views.py.
        order = json.dumps({"account": "zed", "product": "tea", "amount": 3})
        assert _http(f"{base}/orders/", order.encode())[0] == 202
        deadline = time.monotonic() + 10
        while True:
            status, _, body = _http(f"{base}/faust/count/zed/")
            assert status == 200, body
            if json.loads(body) == {"account": "zed", "orders": 1}:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_tables_lists_the_project_tables():
    result = manage("tables", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {
        "order-counts",
        "order-totals",
        "last-order",
        "orders-per-minute",
    }
    counts = rows["order-counts"]
    assert counts["kind"] == "Table"
    assert counts["changelog"] == "example-order-counts-changelog"
    assert counts["store"] == "memory://"
    assert counts["default"] == "int"
    result = manage("tables")
    assert result.returncode == 0, result.stderr
    header, _, *lines = result.stdout.splitlines()
    assert header.split() == ["Name", "Kind", "Changelog", "Store", "Default", "Help"]
    assert [line.split()[0] for line in lines] == [
        "last-order",
        "order-counts",
        "order-totals",
        "orders-per-minute",
    ]


def test_tables_and_reset_are_listed_with_help():
    result = manage("--help")
    assert result.returncode == 0, result.stderr
    assert "  tables" in result.stdout and "  reset" in result.stdout
    result = manage("reset", "--help")
    assert result.returncode == 0, result.stderr
    assert "--yes" in result.stdout
    assert "Stop the project's worker" in result.stdout


def rocksdb_project(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Settings of the example project with RocksDB tables in ``tmp_path``.

    Returns the environment selecting them and the tables' directory, which
    holds two partitions of each table and a file of another table.
    """
    (tmp_path / "rocksdb_settings.py").write_text(
        "from example.settings import *  # noqa: F403\n\n"
        "FAUST = {**FAUST, 'STORE': 'rocksdb://', "
        f"'DATADIR': {str(tmp_path / 'data')!r}}}\n"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "rocksdb_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(EXAMPLE)]),
    }
    directory = tmp_path / "data" / "v1" / "tables"
    for name in ("order-counts-0.db", "order-counts-3.db", "order-totals-1.db"):
        (directory / name).mkdir(parents=True)
        (directory / name / "CURRENT").write_text("MANIFEST-000001\n")
    (directory / "other-table-0.db").mkdir()
    return env, directory


def test_reset_yes_deletes_the_local_table_files(tmp_path):
    env, directory = rocksdb_project(tmp_path)
    result = manage("reset", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "Reset 4 table(s) (last-order, order-counts, order-totals, "
        "orders-per-minute)" in result.stdout
    )
    assert str(directory) in result.stdout
    # Only the files of the project's tables are gone.
    assert sorted(p.name for p in directory.iterdir()) == ["other-table-0.db"]


def test_reset_asks_first_and_answering_no_deletes_nothing(tmp_path):
    env, directory = rocksdb_project(tmp_path)
    before = sorted(p.name for p in directory.iterdir())
    result = manage("reset", env=env, input="n\n")
    assert result.returncode == 1
    assert "order-counts, order-totals, orders-per-minute" in result.stdout
    assert str(directory) in result.stdout
    assert "worker must be stopped" in result.stdout
    assert "no table data was deleted" in result.stderr
    assert sorted(p.name for p in directory.iterdir()) == before
    # Answering yes at the prompt deletes them.
    result = manage("reset", env=env, input="y\n")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["other-table-0.db"]


def test_reset_of_memory_tables_says_there_is_nothing_on_disk():
    result = manage("reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "keep their data in memory only" in result.stdout
    assert "order-counts, order-totals, orders-per-minute" in result.stdout


def small_project(tmp_path: Path, agents_py: str) -> Path:
    """A one-app Django project in ``tmp_path`` with ``agents_py`` as its agents."""
    (tmp_path / "manage.py").write_text(
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(sys.argv)\n"
    )
    (tmp_path / "settings.py").write_text(
        "SECRET_KEY = 'tests-only'\n"
        "USE_TZ = True\n"
        "INSTALLED_APPS = ['django_faust', 'jobs']\n"
        "DATABASES = {}\n"
        "FAUST = {'APP_ID': 'small', 'WEB_ENABLED': False}\n"
    )
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "__init__.py").write_text("")
    (tmp_path / "jobs" / "agents.py").write_text(agents_py)
    return tmp_path


def test_faust_style_command_with_self_runs(tmp_path):
    project = small_project(
        tmp_path,
        "import click\n"
        "from django_faust import app\n\n"
        "@app.command(click.option('--name', default='world'))\n"
        "async def hello(self, name):\n"
        '    """Greet someone."""\n'
        "    self.say(f'hello {name} from {self.app.conf.id}')\n",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "faust", "hello", "--name", "ann"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env=user_env(PYTHONPATH=str(project)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello ann from small\n"


def test_crontab_job_runs_in_the_worker(tmp_path):
    """Every minute, as a user writes it; waits for the next minute (<= 60s)."""
    out = tmp_path / "ran.txt"
    project = small_project(
        tmp_path,
        "import time\n"
        "from django_faust import app\n\n"
        "@app.crontab('* * * * *')\n"
        "async def every_minute():\n"
        f"    with open({str(out)!r}, 'a') as f:\n"
        "        f.write(f'{time.time()}\\n')\n",
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "faust", "worker", "-l", "info"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=user_env(PYTHONPATH=str(project)),
    )
    try:
        deadline = time.monotonic() + 90
        while not out.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.2)
        assert out.exists(), "the crontab job did not run within 90s"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "timers     1" in output
    (ran_at,) = (float(line) for line in out.read_text().split())
    # It ran on a minute boundary (within the time to schedule it).
    assert ran_at % 60 < 5
