"""Configuration: collector.toml, overridden by COLLECTOR_* environment variables.

Every scalar key is also settable as `COLLECTOR_<KEY>` (nested with `__`, e.g.
`COLLECTOR_ROUTING__DEFAULT_FORM=intake`); the environment wins. Any string may be
`${ENV_VAR}`. Relative paths are relative to the config file's folder (the working
directory without a file). Problems are reported all at once, one
`file: /pointer: message` line each.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.errors import ConfigurationError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
STATUSES = ("completed", "incomplete", "abandoned")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


class RoutingConfig(BaseModel):
    """Which form answers which called number."""

    model_config = ConfigDict(extra="forbid")

    default_form: str | None = None
    numbers: dict[str, str] = Field(default_factory=dict)

    @field_validator("numbers")
    @classmethod
    def _e164(cls, numbers: dict[str, str]) -> dict[str, str]:
        for number in numbers:
            if not _E164.fullmatch(number):
                raise ValueError(f"{number!r} is not an E.164 number like +13125550001")
        return numbers


class OutboundConfig(BaseModel):
    """`[outbound]`: how calls are dialled (POST /api/calls, `collector call`)."""

    model_config = ConfigDict(extra="forbid")

    connection_id: str = Field(min_length=1)  # the Call Control App's id
    from_number: str
    # the SDK's answering_machine_detection modes ("disabled": none)
    answering_machine_detection: Literal[
        "detect",
        "detect_beep",
        "detect_words",
        "greeting_end",
        "premium",
        "premium_ios_call_screening_detection",
        "disabled",
    ] = "detect"
    ring_timeout_seconds: int = Field(30, ge=5, le=600)  # the dial's timeout_secs
    machine_detection_seconds: float = Field(5.0, gt=0)
    voicemail_greeting_seconds: float = Field(20.0, gt=0)
    ring_grace_seconds: float = Field(30.0, ge=0)

    @field_validator("from_number")
    @classmethod
    def _e164(cls, number: str) -> str:
        if not _E164.fullmatch(number):
            raise ValueError(f"{number!r} is not an E.164 number like +13125550001")
        return number


class SinkConfig(BaseModel):
    """One `[[sinks]]` entry: its type, name, status filter and the type's own options."""

    model_config = ConfigDict(extra="allow")

    type: str
    name: str | None = None
    statuses: list[str] | None = None

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, value: list[str] | None) -> list[str] | None:
        for status in value or ():
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def sink_name(self) -> str:
        return self.name or self.type


class Settings(BaseModel):
    """Everything the server reads at start-up."""

    model_config = ConfigDict(extra="forbid")

    forms_dir: Path = Path("schemas")
    database_url: str = "sqlite:///collector.db"
    database_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    database_pool_size: int = Field(10, ge=1)
    # PostgreSQL shared by several instances: how long a claim on a command, a delivery or
    # a deadline lasts unless renewed (every third of it): an instance that dies leaves its
    # work to another after at most this long
    lease_seconds: float = Field(15.0, gt=0)
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    hangup_grace_seconds: float = Field(5.0, ge=0)
    session_timeout_seconds: float = Field(1800.0, gt=0)
    retention_days: float = Field(30.0, gt=0)
    default_voice: str = "Telnyx.KokoroTTS.af"
    admin_token: str | None = None
    sandbox_pace_seconds: float = Field(0.3, ge=0)
    log_format: Literal["json", "console"] | None = None
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    outbound: OutboundConfig | None = None  # None: no dialling (the sandbox's own in sandbox mode)
    sinks: list[SinkConfig] = Field(default_factory=list)
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="(defaults)", exclude=True)

    def path(self, value: str | Path) -> Path:
        """A configured path, relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def forms_path(self) -> Path:
        return self.path(self.forms_dir)

    @property
    def database(self) -> DatabaseUrl:
        """The store `database_url` names; ConfigurationError (one line, no password) if
        it names none."""
        try:
            return parse_database_url(self.database_url, self.path)
        except ValueError as exc:
            raise ConfigurationError([f"{self.source}: /database_url: {exc}"]) from None

    @property
    def sqlite_path(self) -> str:
        """The SQLite file behind `database_url` (`sqlite:///relative` or `sqlite:////abs`)."""
        db = self.database
        if db.kind != "sqlite":
            raise ConfigurationError(
                [f"{self.source}: /database_url: {db.shown} is not a SQLite database"]
            )
        return db.target

    def sink_configs(self) -> list[SinkConfig]:
        """The configured sinks; with none at all, one jsonl sink writing results.jsonl."""
        return self.sinks or [SinkConfig(type="jsonl", path="results.jsonl")]


_DATABASE_HINT = "expected sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
_SECRET_PARAM = re.compile(r"(?i)(^|&)((?:ssl)?password)=([^&]*)")


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed `database_url`: which store, what it opens, and how to show it."""

    kind: Literal["sqlite", "postgresql"]
    target: str  # sqlite: the file (or ":memory:"); postgresql: the URL as given
    shown: str  # the URL without its password, for logs and errors
    hosts: str = ""  # postgresql: host:port[,host:port], as messages name them
    password: str | None = None  # postgresql: to scrub from a driver's messages

    def scrub(self, text: str) -> str:
        """`text` with the URL's password (as given, or percent-decoded) cut out."""
        for secret in {self.password or "", unquote(self.password or "")} - {""}:
            text = text.replace(secret, "***")
        return text


def redact(url: str) -> str:
    """`url` without its password: the user part's `:password@` and any `password=` (or
    `sslpassword=`) query parameter become `***`. Never raises, whatever the text."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends) if ends else len(rest)
    colon = rest.find(":", 0, min(end, at))
    # the authority ends at the first / ? #; an @ after that is the userinfo's only if what
    # follows the colon cannot be a port (a password holding / ? # unencoded)
    if 0 <= colon < at and (at < end or not rest[colon + 1 : end].isdigit()):
        rest = f"{rest[:colon]}:***{rest[at:]}"
    path, q, query = rest.partition("?")
    if q:
        query = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", query)
    return f"{scheme}://{path}{q}{query}"


def parse_database_url(url: str, resolve: Callable[[str], Path] = Path) -> DatabaseUrl:
    """`sqlite:///file` (relative to `resolve`) or `postgresql://` / `postgres://`; else a
    ValueError whose message never holds the password."""
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        if not rest:
            raise ValueError(f"no file after sqlite:/// ({_DATABASE_HINT})")
        target = ":memory:" if rest == ":memory:" else str(resolve(rest))
        return DatabaseUrl("sqlite", target, url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        got = f"{scheme}://" if sep and scheme.isalnum() else "no scheme"
        raise ValueError(f"not a database URL: {_DATABASE_HINT} (got {got})")
    head, _, query = rest.partition("?")
    userinfo, _, hostpath = head.rpartition("@")
    if any(c in userinfo for c in "/#@") or "#" in rest:
        raise ValueError(
            "a PostgreSQL URL that does not parse: percent-encode any / # @ ? in the user"
            " or password (a / is %2F), and give no #fragment"
        )
    netloc = hostpath.split("/", 1)[0]
    hosts = []
    for part in netloc.split(",") if netloc else []:
        host, port = _host_port(part)
        hosts.append(f"{host or 'localhost'}:{port or 5432}")
    password = userinfo.split(":", 1)[1] if ":" in userinfo else None
    for m in _SECRET_PARAM.finditer(query):
        password = password or m.group(3)
    return DatabaseUrl(
        "postgresql", url, redact(url), ",".join(hosts) or "localhost:5432", password or None
    )


def _host_port(part: str) -> tuple[str, str]:
    if part.startswith("["):  # [IPv6]:port
        host, bracket, port = part[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError("a PostgreSQL URL that does not parse: a [host] is not closed")
        port = port[1:]
    else:
        host, _, port = part.partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(
            "a PostgreSQL URL whose port is not a number from 1 to 65535 (in a password,"
            " percent-encode a ? as %3F)"
        )
    return (f"[{host}]" if ":" in host else host), port


class TelnyxEnv(BaseModel):
    """The SDK's own variables: live mode when an API key is set."""

    api_key: str | None = None
    public_key: str | None = None
    base_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TelnyxEnv:
        return cls(
            api_key=environ.get("TELNYX_API_KEY") or None,
            public_key=environ.get("TELNYX_PUBLIC_KEY") or None,
            base_url=environ.get("TELNYX_BASE_URL") or None,
        )

    @property
    def live(self) -> bool:
        return self.api_key is not None


def _expand(value: Any, environ: Mapping[str, str], at: str, problems: list[str], src: str) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in environ:
                problems.append(f"{src}: {at or '/'}: environment variable {name} is not set")
                return ""
            return environ[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, environ, f"{at}/{k}", problems, src) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, f"{at}/{i}", problems, src) for i, v in enumerate(value)]
    return value


def _env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    scalar_fields = {
        name
        for name, f in Settings.model_fields.items()
        if name not in ("routing", "sinks", "outbound")
    }
    for key, value in environ.items():
        if not key.startswith("COLLECTOR_"):
            continue
        parts = key[len("COLLECTOR_") :].lower().split("__")
        if parts == ["routing", "default_form"]:
            raw.setdefault("routing", {})["default_form"] = value
        elif len(parts) == 3 and parts[:2] == ["routing", "numbers"]:
            raw.setdefault("routing", {}).setdefault("numbers", {})[parts[2]] = value
        elif len(parts) == 2 and parts[0] == "outbound":
            raw.setdefault("outbound", {})[parts[1]] = value
        elif len(parts) == 1 and parts[0] in scalar_fields:
            raw[parts[0]] = value


def _pointer(loc: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(p) for p in loc) if loc else "/"


def load_settings(
    config: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read collector.toml (or `config`) and the environment; raise with every problem."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    path = Path(config) if config is not None else Path("collector.toml")
    src = str(path)
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise ConfigurationError([f"{src}: /: {exc}"]) from None
        base_dir = path.resolve().parent
    elif config is not None:
        raise ConfigurationError([f"{src}: /: no such file"])
    else:
        base_dir = Path.cwd()
        src = "(environment)"
    raw = _expand(raw, environ, "", problems, src)
    _env_overrides(raw, environ)
    if "port" not in raw and environ.get("PORT"):
        raw["port"] = environ["PORT"]
    raw["base_dir"] = base_dir
    raw["source"] = src
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(f"{src}: {_pointer(tuple(err['loc']))}: {message}")
        raise ConfigurationError(problems) from None
    names: dict[str, int] = {}
    for i, sink in enumerate(settings.sinks):
        if sink.sink_name in names:
            problems.append(
                f"{src}: /sinks/{i}/name: sink name {sink.sink_name!r} is already used by"
                f" /sinks/{names[sink.sink_name]} (give each sink a unique name)"
            )
        names.setdefault(sink.sink_name, i)
    if problems:
        raise ConfigurationError(problems)
    return settings
