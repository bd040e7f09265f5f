"""The configuration file as an operator writes it: what loads, and what is refused by name."""

from __future__ import annotations

import dataclasses
import socket
import tomllib
from pathlib import Path

import pytest

from gateway import app
from gateway.cli import main
from gateway.config import (
    Config,
    ConfigError,
    ConsentConfig,
    MediaConfig,
    SipConfig,
    StoreConfig,
    TlsConfig,
    TrunkConfig,
    load,
    loads,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "gateway.example.toml"

MINIMAL = """\
[sip]
listen = ["udp:127.0.0.1:5060"]
[trunks.main]
uri = "sip:127.0.0.1:5070"
"""


def test_example_config_loads_with_every_default() -> None:
    config = load(EXAMPLE)

    # The example shows every key at its default value, so it must load to the defaults.
    assert config.sip == SipConfig()
    assert config.media == MediaConfig()
    assert config.store == StoreConfig()
    assert config.consent == ConsentConfig()
    assert config.trunks == {"main": TrunkConfig(uri="sip:127.0.0.1:5070")}


def names(cls: type[object]) -> set[str]:
    assert dataclasses.is_dataclass(cls)
    return {f.name for f in dataclasses.fields(cls)}


def test_example_config_documents_every_key() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))

    assert set(data) == names(Config)
    assert set(data["sip"]) == names(SipConfig)
    assert set(data["sip"]["tls"]) == names(TlsConfig)
    assert set(data["trunks"]["main"]) == names(TrunkConfig)
    assert set(data["media"]) == names(MediaConfig)
    assert set(data["store"]) == names(StoreConfig)
    assert set(data["consent"]) == names(ConsentConfig)


def test_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    config = load(path)

    assert config.sip.listen == ("udp:127.0.0.1:5060",)
    assert (config.sip.t1, config.sip.t2, config.sip.t4) == (0.5, 4.0, 5.0)
    assert config.sip.stranger_rate == 50
    trunk = config.trunks["main"]
    assert trunk.uri == "sip:127.0.0.1:5070"
    assert (trunk.username, trunk.password, trunk.keepalive_interval) == ("", "", 30.0)
    assert trunk.allowed_sources == ()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (MINIMAL + 'pasword = "x"\n', "trunks.main.pasword"),
        (MINIMAL.replace("[sip]\n", "[sip]\nt5 = 1.0\n"), "sip.t5"),
        (MINIMAL + "[sip.tls]\nverfy = false\n", "sip.tls.verfy"),
        (MINIMAL + "[medai]\nlatch = true\n", "medai"),
    ],
)
def test_unknown_key_is_an_error_that_names_it(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads(text, source="gw.toml")
    assert str(info.value) == f"gw.toml: unknown key {named}"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('t1 = "fast"', "sip.t1 must be a number, not 'fast'"),
        ("stranger_rate = 1.5", "sip.stranger_rate must be an integer, not 1.5"),
        ("max_redirects = true", "sip.max_redirects must be an integer, not True"),
        ('follow_redirects = "yes"', "sip.follow_redirects must be true or false, not 'yes'"),
        ('listen = "udp:127.0.0.1:5060"', "sip.listen must be a list"),
        ("listen = [5060]", "sip.listen[0] must be a string, not 5060"),
        ("tls = 1", "[sip.tls] must be a table"),
    ],
)
def test_wrong_type_is_an_error_that_names_the_key(line: str, message: str) -> None:
    text = MINIMAL.replace('listen = ["udp:127.0.0.1:5060"]\n', "")
    text = text.replace("[sip]\n", f"[sip]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        loads(text, source="gw.toml")
    assert str(info.value) == f"gw.toml: {message}"


def test_trunk_without_uri_is_an_error_that_names_it() -> None:
    with pytest.raises(ConfigError) as info:
        loads('[trunks.main]\nusername = "alice"\n', source="gw.toml")
    assert str(info.value) == "gw.toml: missing key trunks.main.uri"


def test_trunk_keepalive_of_the_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        loads(MINIMAL + 'keepalive_interval = "30s"\n', source="gw.toml")
    assert str(info.value) == "gw.toml: trunks.main.keepalive_interval must be a number, not '30s'"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("t1 = 0", "sip.t1 must be more than 0, not 0.0"),
        ("t2 = 0.25", "sip.t2 must be at least sip.t1, not 0.25"),
        ("min_se = 30", "sip.min_se must be at least 90 (RFC 4028), not 30"),
        ("session_expires = 60", "sip.session_expires must be 0 or at least sip.min_se"),
        ("max_message_size = 0", "sip.max_message_size must be > 0, not 0"),
    ],
)
def test_value_that_cannot_work_is_named(line: str, message: str) -> None:
    text = MINIMAL.replace("[sip]\n", f"[sip]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        loads(text, source="gw.toml")
    assert str(info.value).startswith(f"gw.toml: {message}")


@pytest.mark.parametrize("value", [0, 10, 1001])
def test_a_catch_up_out_of_range_is_named(value: int) -> None:
    with pytest.raises(ConfigError) as info:
        loads(MINIMAL + f"[media]\nsend_catch_up_ms = {value}\n", source="gw.toml")
    assert str(info.value) == (
        f"gw.toml: media.send_catch_up_ms must be from 20 to 1000, not {value}"
    )


def test_session_timer_can_be_turned_off() -> None:
    config = loads(MINIMAL.replace("[sip]\n", "[sip]\nsession_expires = 0\n"))
    assert config.sip.session_expires == 0


def test_invalid_toml_and_missing_file_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^gw\.toml: not valid TOML"):
        loads("[sip\n", source="gw.toml")
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read"):
        load(missing)


def test_cli_reports_a_bad_key_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL + 'pasword = "x"\n', encoding="utf-8")

    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"gateway: {path}: unknown key trunks.main.pasword\n"


def test_cli_reports_a_bad_value_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # T1 = 0 used to reach the transaction layer and end in a ValueError traceback.
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL.replace("[sip]\n", "[sip]\nt1 = 0\n"), encoding="utf-8")

    assert main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"gateway: {path}: sip.t1 must be more than 0, not 0.0\n"


def test_trunk_host_with_several_addresses_accepts_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A carrier's signalling name resolves to several nodes; requests come from any of them.
    addresses = {
        "sip.carrier.example": ["198.51.100.10", "198.51.100.11"],
        "backup.carrier.example": ["203.0.113.5"],
    }

    def getaddrinfo(host: str, port: object) -> list[tuple[object, ...]]:
        if host not in addresses:
            raise socket.gaierror(host)
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (a, 0)) for a in addresses[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    config = loads(
        '[trunks.main]\nuri = "sip:sip.carrier.example"\n'
        'allowed_sources = ["backup.carrier.example:5060", "192.0.2.7"]\n'
    )
    (trunk,) = app.trunk_settings(config)

    assert trunk.sources == ("192.0.2.7", "198.51.100.10", "198.51.100.11", "203.0.113.5")


@pytest.mark.parametrize(
    ("source", "address"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("192.0.2.7:5060", "192.0.2.7"),
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("[2001:db8::7]:5060", "2001:db8::7"),
    ],
)
def test_allowed_source_forms(source: str, address: str) -> None:
    config = loads(f'[trunks.main]\nuri = "sip:192.0.2.1"\nallowed_sources = ["{source}"]\n')
    (trunk,) = app.trunk_settings(config)

    assert address in trunk.sources


def test_trunk_check_of_an_unknown_trunk_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL, encoding="utf-8")

    assert main(["trunk", "check", "mian", "--config", str(path)]) == 2
    assert capsys.readouterr().err == "gateway: no trunk named 'mian' (configured: main)\n"
