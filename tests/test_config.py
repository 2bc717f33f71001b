"""Configuration: precedence, and every class of bad input -> exit 2, one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carbonscope.config import load_config
from carbonscope.errors import ConfigError


def check(path: Path | str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbonscope", "config", "check", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carbonscope.toml"
    path.write_text(text)
    return path


def test_valid_file_passes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[agent]\ninterval = "500ms"\n[carbon]\nlocation = "FR"\npue = 1.4\nmarket_factor = 20\n',
    )
    result = check(path)
    assert result.returncode == 0, result.stderr
    assert f"{path}: OK" in result.stdout


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[agent]\nintervall = "1s"\n', "agent.intervall", 'did you mean "interval"'),
        ("[carbn]\npue = 1.2\n", "carbn", 'did you mean "carbon"'),
        ('[carbon]\npue = "high"\n', "carbon.pue", "valid number"),
        ('[agent]\ninterval = "5 parsecs"\n', "agent.interval", "invalid duration"),
        ('[agent]\ninterval = "10ms"\n', "agent.interval", "between 50ms and 60s"),
        ('[agent]\ninterval = "2m"\n', "agent.interval", "between 50ms and 60s"),
        ("[carbon]\npue = 0.8\n", "carbon.pue", "greater than or equal to 1"),
        ('[carbon]\nlocation = "Atlantis"\n', "carbon.location", "unknown location"),
        (
            '[carbon]\ncloud_metadata_url = "169.254.169.254"\n',
            "carbon.cloud_metadata_url",
            "http://",
        ),
        ('[agent]\nlisten = "9377"\n', "agent.listen", "HOST:PORT"),
        ('[sensors]\nenable = ["rapl", "telepathy"]\n', "sensors.enable.1", "Input should be"),
        ('[jobs]\npromoted_tags = ["Team-Name"]\n', "jobs.promoted_tags", "cannot become labels"),
        ('[jobs]\nflush = "1h"\n', "jobs.flush", "between 100ms and 5m"),
        ("[jobs]\nmax_exported = -1\n", "jobs.max_exported", "greater than or equal to 0"),
        ('[jobs]\nkeep_finished = "soon"\n', "jobs.keep_finished", "invalid duration"),
    ],
)
def test_bad_value_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, toml: str, key: str, words: str
) -> None:
    path = write(tmp_path, toml)
    result = check(path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{path}: {key}:" in lines[0]
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ninterval = "1 fortnight"\n[carbon]\npue = 0.5\n')
    lines = check(path).stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("agent.interval" in line for line in lines)
    assert any("carbon.pue" in line for line in lines)


@pytest.mark.parametrize("kind", ["missing", "directory", "not-toml"])
def test_unreadable_file_exits_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "carbonscope.toml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-toml":
        path.write_text("[agent\ninterval = \n")
    result = check(path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"carbonscope: {path}:")
    assert "Traceback" not in result.stderr


def test_permission_denied_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[agent]\n")
    if os.geteuid() != 0:
        path.chmod(0)
        result = check(path)
        assert result.returncode == 2
        assert result.stderr.strip() == f"carbonscope: {path}: permission denied"
        return
    # root reads any file whatever its mode: make the open fail the way it fails for a user
    real_open = Path.open

    def denied(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, env={}, euid=0)
    assert excinfo.value.problems == [f"{path}: permission denied"]


def test_unknown_env_key_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    result = check(path, {"CARBONSCOPE_AGENT__INTERVALL": "2s"})
    assert result.returncode == 2
    assert "environment CARBONSCOPE_AGENT__INTERVALL: agent.intervall: unknown key" in result.stderr


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[agent]\ninterval = "2s"\nlisten = "127.0.0.1:1"\n[carbon]\npue = 1.1\n'
    )
    env = {"CARBONSCOPE_AGENT__INTERVAL": "3s", "CARBONSCOPE_CARBON__PUE": "1.3"}
    loaded = load_config(path, env=env, flags={"agent.interval": 0.5}, euid=1000)
    assert loaded.config.agent.interval == 0.5  # flag
    assert loaded.config.carbon.pue == 1.3  # env over file
    assert loaded.config.agent.listen == "127.0.0.1:1"  # file over default
    assert loaded.config.agent.sysfs_root == Path("/sys")  # default


def test_config_file_search_order(tmp_path: Path) -> None:
    system = write(tmp_path, '[carbon]\nlocation = "DE"\n')
    from_env = tmp_path / "env.toml"
    from_env.write_text('[carbon]\nlocation = "FR"\n')
    assert load_config(env={}, system_path=system, euid=1000).config.carbon.location == "DE"
    assert (
        load_config(env={"CARBONSCOPE_CONFIG": str(from_env)}, system_path=system, euid=1000).path
        == from_env
    )
    assert load_config(env={}, system_path=tmp_path / "absent.toml", euid=1000).path is None


def test_state_dir_and_socket_defaults(tmp_path: Path) -> None:
    as_root = load_config(env={}, system_path=tmp_path / "x", euid=0)
    assert as_root.state_dir == Path("/var/lib/carbonscope")
    assert as_root.jobs_socket == Path("/run/carbonscope/jobs.sock")
    user = load_config(
        env={"XDG_STATE_HOME": "/home/u/.state", "XDG_RUNTIME_DIR": "/run/user/1000"},
        system_path=tmp_path / "x",
        euid=1000,
    )
    assert user.state_dir == Path("/home/u/.state/carbonscope")
    assert user.jobs_socket == Path("/run/user/1000/carbonscope/jobs.sock")


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[carbon]\nprovider = "electricitymaps"\n', "carbon", "carbon.electricitymaps.token_file"),
        (
            '[carbon]\nprovider = "watttime"\n[carbon.watttime]\nusername = "me"\n',
            "carbon",
            "carbon.watttime.password_file, carbon.watttime.region",
        ),
        ('[carbon]\nprovider = "file"\n', "carbon", "carbon.file.path"),
        ('[carbon]\nprovider = "grid-oracle"\n', "carbon.provider", "Input should be"),
        ('[carbon]\nrefresh = "500ms"\n', "carbon.refresh", "at least 1s"),
        ('[carbon]\nmax_age = "0s"\n', "carbon.max_age", "at least 1s"),
        ('[carbon]\ntimeout = "5m"\n', "carbon.timeout", "between 100ms and 2m"),
        ('[carbon.uk]\npostcode = "RG10 4XX"\n', "carbon.uk.postcode", "outward part"),
        ('[carbon.uk]\npostcode = "RG10"\nregion_id = 3\n', "carbon.uk", "not both"),
        ("[carbon.uk]\nregion_id = 18\n", "carbon.uk.region_id", "less than or equal to 17"),
        (
            '[carbon.electricitymaps]\nurl = "api.example.com"\n',
            "carbon.electricitymaps.url",
            "base URL",
        ),
        (
            '[carbon.electricitymaps]\nemission_factor_type = "scope3"\n',
            "carbon.electricitymaps.emission_factor_type",
            "'lifecycle' or 'direct'",
        ),
        (
            '[carbon.watttime]\npasword_file = "/x"\n',
            "carbon.watttime.pasword_file",
            'did you mean "password_file"',
        ),
    ],
)
def test_bad_provider_config_names_the_key(tmp_path: Path, toml: str, key: str, words: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={}, euid=1000)
    (line,) = caught.value.problems
    assert line.startswith(f"{path}: {key}: "), line
    assert words in line


def test_provider_keys_from_file_and_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[carbon]\nprovider = "uk"\nrefresh = "5m"\n[carbon.uk]\npostcode = "rg10"\n',
    )
    loaded = load_config(path, env={"CARBONSCOPE_CARBON__MAX_AGE": "30m"}, euid=1000)
    carbon = loaded.config.carbon
    assert (carbon.provider, carbon.refresh, carbon.max_age) == ("uk", 300.0, 1800.0)
    assert carbon.uk.postcode == "RG10" and carbon.uk.url == "https://api.carbonintensity.org.uk"
    token = tmp_path / "em.token"
    env = {
        "CARBONSCOPE_CARBON__PROVIDER": "electricitymaps",
        "CARBONSCOPE_CARBON__ELECTRICITYMAPS__TOKEN_FILE": str(token),
        "CARBONSCOPE_CARBON__ELECTRICITYMAPS__ZONE": "DE",
        "CARBONSCOPE_CARBON__ELECTRICITYMAPS__URL": "http://127.0.0.1:8080/",
    }
    em = load_config(path, env=env, euid=1000).config.carbon
    assert em.provider == "electricitymaps" and em.electricitymaps.token_file == token
    assert em.electricitymaps.url == "http://127.0.0.1:8080"
    assert em.electricitymaps.emission_factor_type == "lifecycle"
    assert (em.refresh, em.max_age) == (300.0, 7200.0)  # the defaults: 2h max age


@pytest.mark.faults
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[agent]\ninterval = 1e400\n", "agent.interval"),
        ("[carbon]\nmarket_factor = inf\n", "carbon.market_factor"),
        ("[carbon]\npue = nan\n", "carbon.pue"),
        ("[sensors.rapl]\nmax_zone_watts = inf\n", "sensors.rapl.max_zone_watts"),
        ("[sensors.model]\ndram_watts_per_gb = inf\n", "sensors.model.dram_watts_per_gb"),
    ],
)
def test_non_finite_numbers_are_rejected_with_one_line(tmp_path: Path, text: str, key: str) -> None:
    result = check(write(tmp_path, text))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f": {key}: " in line and "finite" in line


def test_a_variable_that_sets_nothing_is_a_warning_with_a_did_you_mean(tmp_path: Path) -> None:
    result = check(
        write(tmp_path, ""),
        env={"CARBONSCOPE_AGENT_INTERVAL": "5m", "CARBONSCOPE_SOCKET": "/tmp/x.sock"},
    )
    assert result.returncode == 0
    assert result.stderr.strip().splitlines() == [
        "carbonscope: warning: environment CARBONSCOPE_AGENT_INTERVAL: not a config variable, "
        "ignored (did you mean CARBONSCOPE_AGENT__INTERVAL?); config variables are "
        "CARBONSCOPE_<SECTION>__<KEY>"
    ]
    loaded = load_config(None, env={"CARBONSCOPE_SENSORS_RAPL_MAX_ZONE_WATTS": "5"}, euid=1000)
    assert loaded.warnings and "CARBONSCOPE_SENSORS__RAPL__MAX_ZONE_WATTS" in loaded.warnings[0]
