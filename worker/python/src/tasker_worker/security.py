"""Credentials and TLS for the broker connections of the worker and the
client, with the same variables as the other SDKs: a password given beside
the URL rather than in it (``TASKER_AMQP_PASSWORD``, or the file
``TASKER_AMQP_PASSWORD_FILE`` names, as containers mount secrets), and the CA
and client certificate of ``amqps://`` connections (``TASKER_TLS_CA_FILE``,
``TASKER_TLS_CERT_FILE``, ``TASKER_TLS_KEY_FILE``).

No error here ever holds a secret: errors name the variable and the file.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiormq
from yarl import URL

from tasker_worker.errors import ConfigError

PASSWORD_VAR = "TASKER_AMQP_PASSWORD"
PASSWORD_FILE_VAR = "TASKER_AMQP_PASSWORD_FILE"
CA_FILE_VAR = "TASKER_TLS_CA_FILE"
CERT_FILE_VAR = "TASKER_TLS_CERT_FILE"
KEY_FILE_VAR = "TASKER_TLS_KEY_FILE"

TLS_HINT = (
    f"check that {CA_FILE_VAR} holds the CA that signed the broker's certificate, and "
    f"{CERT_FILE_VAR}/{KEY_FILE_VAR} if it asks for a client certificate"
)
"""What to check when a TLS handshake failed, for error messages."""


@dataclass(frozen=True)
class Security:
    """How a connection to RabbitMQ proves who it is, and whom it trusts.
    The TLS files apply to ``amqps://`` URLs only, and are read at each
    connection, so that a certificate renewed on disk is used at the next."""

    password: str | None = field(default=None, repr=False)
    """The password of every broker URL, in place of any written in it: a
    password kept out of the URL, which is often logged or shown."""
    tls_ca_file: str | None = None
    """A PEM file of CA certificates trusted on top of the system's roots:
    a broker with a certificate of a private CA."""
    tls_cert_file: str | None = None
    """The client certificate (PEM), for a broker that asks for one."""
    tls_key_file: str | None = None
    """The private key (PEM) of :attr:`tls_cert_file`."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Security:
        """The settings the environment gives.

        :raises ConfigError: if both ``TASKER_AMQP_PASSWORD`` and
            ``TASKER_AMQP_PASSWORD_FILE`` are set, the file cannot be read,
            or only one of the client certificate and its key is set.
        """
        env = os.environ if environ is None else environ
        security = cls(
            password=password_from_env(env),
            tls_ca_file=env.get(CA_FILE_VAR),
            tls_cert_file=env.get(CERT_FILE_VAR),
            tls_key_file=env.get(KEY_FILE_VAR),
        )
        security.check()
        return security

    def check(self) -> None:
        """:raises ConfigError: if only one of the client certificate and its
        key is given."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError(
                f"set both {CERT_FILE_VAR} and {KEY_FILE_VAR} (tls_cert_file and tls_key_file) "
                "for a client certificate, or neither"
            )

    def apply_password(self, url: URL) -> URL:
        """``url`` with :attr:`password` in it, percent-encoded, in place of
        any it had; ``url`` as it is without one.

        :raises ConfigError: if ``url`` names no user to go with it.
        """
        if self.password is None:
            return url
        if not url.user:
            raise ConfigError(
                f"{PASSWORD_VAR} (or {PASSWORD_FILE_VAR}) gives a password, but {url} names no "
                "user; write the user in TASKER_AMQP_URL, e.g. amqp://tasker@host:5672/%2f"
            )
        return url.with_password(self.password)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of an ``amqps://`` connection: the system's
        roots and :attr:`tls_ca_file`, hostname checks, and the client
        certificate if given. The files are read now.

        :raises ConfigError: naming the variable and the path of a file
            that cannot be read or holds no certificate (or key) in PEM.
        """
        self.check()
        context = ssl.create_default_context()
        if self.tls_ca_file is not None:
            _readable(CA_FILE_VAR, self.tls_ca_file)
            try:
                context.load_verify_locations(cafile=self.tls_ca_file)
            except (ssl.SSLError, ValueError) as e:
                raise ConfigError(
                    f"{CA_FILE_VAR}={self.tls_ca_file}: no CA certificate in PEM in the file: {e}"
                ) from None
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            _readable(CERT_FILE_VAR, self.tls_cert_file)
            _readable(KEY_FILE_VAR, self.tls_key_file)
            try:
                # An encrypted key would make OpenSSL ask on the terminal.
                context.load_cert_chain(
                    self.tls_cert_file, self.tls_key_file, password=_encrypted(self.tls_key_file)
                )
            except (ssl.SSLError, ValueError) as e:
                raise ConfigError(
                    f"{CERT_FILE_VAR}={self.tls_cert_file} and {KEY_FILE_VAR}={self.tls_key_file} "
                    f"are not a certificate and its unencrypted private key in PEM: {e}"
                ) from None
        return context


def password_from_env(env: Mapping[str, str]) -> str | None:
    """The password in ``TASKER_AMQP_PASSWORD``, or in the file that
    ``TASKER_AMQP_PASSWORD_FILE`` names (without its trailing line breaks);
    ``None`` if neither is set.

    :raises ConfigError: if both are set or the file cannot be read, naming
        the variable and the path, never the content.
    """
    password = env.get(PASSWORD_VAR)
    path = env.get(PASSWORD_FILE_VAR)
    if password is not None and path is not None:
        raise ConfigError(
            f"both {PASSWORD_VAR} and {PASSWORD_FILE_VAR} are set; set one: the password "
            "itself, or the file that holds it"
        )
    if path is None:
        return password
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(
            f"{PASSWORD_FILE_VAR}={path}: cannot read the file: {e.strerror or e}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{PASSWORD_FILE_VAR}={path}: the file is not UTF-8 text") from None


def tls_failure(error: BaseException) -> str | None:
    """Why the TLS handshake failed, if ``error`` (from connecting to an
    ``amqps://`` URL) says it did: a certificate that did not verify, an
    alert from the broker, or the broker dropping the connection before
    AMQP began, as one that wants a client certificate does under TLS 1.3."""
    seen: set[int] = set()
    closed: BaseException | None = None
    cause: BaseException | None = error
    # aiormq chains its exceptions in a loop: each is looked at once.
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the broker's certificate did not verify: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return str(cause)
        if closed is None and isinstance(
            cause,
            ConnectionResetError
            | ConnectionAbortedError
            | BrokenPipeError
            | EOFError
            | aiormq.exceptions.IncompatibleProtocolError,
        ):
            closed = cause
        cause = cause.__cause__ or cause.__context__
    if closed is not None:
        return f"the broker closed the connection before AMQP began ({closed!r})"
    return None


def _readable(variable: str, path: str) -> None:
    """:raises ConfigError: naming ``variable`` and ``path`` if the file
    cannot be read."""
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ConfigError(f"{variable}={path}: cannot read the file: {e.strerror or e}") from None


def _encrypted(path: str) -> Callable[[], bytes]:
    """The password callback of :meth:`ssl.SSLContext.load_cert_chain`,
    called only for an encrypted key, which Tasker has no password for."""

    def refuse() -> bytes:
        raise ConfigError(
            f"{KEY_FILE_VAR}={path}: the private key is encrypted; give it unencrypted (PEM), "
            "readable by this process only"
        )

    return refuse
