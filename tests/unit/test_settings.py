"""Start-up settings: a bad one stops the CLI with one line naming it; where the JWT secret comes from."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from invite.kernel.auth import DEV_SECRET_FILE, JwtSecret, dev_mode, dev_secret
from invite.kernel.settings import ROOT, Settings


def run_cli(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {f.upper() for f in Settings.__struct_fields__}}
    return subprocess.run(
        [sys.executable, "-m", "invite", *args],
        env={**clean, "DATA_DIR": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["serve"], "PORT", "eighty"),
        (["serve"], "LOG_LEVEL", "LOUD"),
        (["migrate"], "DB_POOL_MAX", "0"),
        (["token", "--user-id", "1"], "API_PREFIX", "api"),
    ],
)
def test_a_bad_setting_stops_the_cli_with_one_line(
    command: list[str], variable: str, value: str, tmp_path: Path
) -> None:
    result = run_cli(*command, env={variable: value}, tmp_path=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"invite: {variable}: ")
    assert "Traceback" not in result.stderr


def test_token_command_signs_with_jwt_secret(tmp_path: Path) -> None:
    secret = "s" * 40
    result = run_cli(
        "token", "--user-id", "77", "--minutes", "5", env={"JWT_SECRET": secret}, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "77"
    assert claims["exp"] - claims["iat"] == 300


def test_dev_secret_is_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    assert dev_mode(settings)
    first = dev_secret(settings)
    assert len(first) >= 32
    assert dev_secret(settings) == first
    mode = stat.S_IMODE((tmp_path / DEV_SECRET_FILE).stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_in_dev_mode_the_token_command_uses_the_kept_secret(tmp_path: Path) -> None:
    result = run_cli("token", "--user-id", "1", env={}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    secret = dev_secret(Settings(data_dir=str(tmp_path)))
    assert jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "1"


async def test_jwt_secret_wins_over_the_dev_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), jwt_secret="configured-secret")
    assert not dev_mode(settings)
    source = JwtSecret(settings)
    assert await source() == "configured-secret"
    await source.aclose()
    assert not (tmp_path / DEV_SECRET_FILE).exists()
