"""Deployment settings (pydantic-settings, ``TAILOR_`` prefix), read only by the CLI and the app
factory through the cached :func:`get_settings`; never at import time."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Where the database is, how sessions and passwords behave, and test-only hooks."""

    model_config = SettingsConfigDict(env_prefix="TAILOR_", extra="ignore")

    database_url: str = "sqlite:///tailor.db"
    protocol: str = "best"
    # sessions: absolute lifetime and idle timeout (ASVS: idle <= 30 min for privileged roles)
    token_ttl_minutes: int = Field(default=8 * 60, ge=1)
    token_idle_minutes: int = Field(default=30, ge=1, le=30)
    # login throttling (tailor.services.throttle): this many failed password checks in a row
    # cost nothing, then each waits base * 2**k seconds, at most the cap, before the next is
    # checked; with the bounds below at most 20 + 7 + 3600/60 = 87 checks per account and
    # hour reach the password hash (G13: <= 100)
    login_free_failures: int = Field(default=5, ge=1, le=20)
    # the same for a client address trying usernames that do not exist (each costs a decoy
    # password check; a few suffice for a mistyped name)
    login_free_failures_unknown_user: int = Field(default=2, ge=1, le=20)
    login_backoff_base_seconds: float = Field(default=1.0, ge=0.5, le=3600)
    login_backoff_max_seconds: float = Field(default=900, ge=60, le=86_400)
    # days after which a password must be changed (0: never, as NIST 800-63B recommends)
    password_max_age_days: int = Field(default=0, ge=0, le=3650)
    # Argon2id parameters (G13: memory >= 19 MiB, t >= 2, p = 1)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19_456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    # roles notified (outbox rows, one per active user) of every emergency unblinding
    unblind_notify_roles: str = Field(default="admin,statistician",
                                      pattern=r"^[a-z_]+(,[a-z_]+)*$")
    # /docs and /openapi.json without login (a public API reference); off by default
    api_docs_public: bool = False
    # participant links (ePRO): ask for the year of birth before showing any question
    participant_link_second_factor: bool = False
    # emergency unblindings one user may sign in any 24 hours (429 beyond, audited)
    unblind_max_per_day: int = Field(default=5, ge=1, le=1000)
    # the notification outbox's SMTP sender (tailor.services.mail); empty host: not sent
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "tailor@localhost"
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    # where notifications go for users without an e-mail address (empty: they wait)
    mail_fallback_to: str = ""
    # --- participant messages (issue 20b, tailor.services.outreach; `tailor reminders send`)
    # the secret the links in participant messages are derived from (>= 16 characters; empty:
    # no participant message is queued or sent). Keep it like a password.
    link_secret: str = ""
    # the server's address as participants reach it (the links in messages start with it)
    public_url: str = "http://127.0.0.1:8000"
    # SMS: '' (none), 'file:<path>' (one JSON line per message; tests and demos) or
    # 'python:<module>:<factory>' (a deployment's own gateway adapter, see SmsSender)
    sms_sender: str = ""
    # a failed message is retried after retry_base * 2**(attempts-1) seconds, up to this many
    # attempts, then marked "gave up" (the site dashboard shows it: call the participant)
    message_max_attempts: int = Field(default=5, ge=1, le=50)
    message_retry_base_seconds: float = Field(default=300, ge=1, le=86_400)
    # whole-trial computations (exports, data queries, statistics pages) running at once per
    # process; one more is a 429 with Retry-After (tailor.web.limits)
    heavy_requests: int = Field(default=2, ge=1, le=64)
    # participant pages (/p/...): requests per minute per link and per client address (a
    # clinic's shared connection carries many participants); one more is a friendly 429;
    # a 60-screen Visit 0 answered at speed takes about 120 requests in a minute (browser test)
    participant_requests_per_link: int = Field(default=300, ge=10, le=10_000)
    participant_requests_per_address: int = Field(default=600, ge=10, le=1_000_000)
    # database connection pool per process (PostgreSQL)
    pool_size: int = Field(default=10, ge=1)
    # threads per server process running request handlers (service calls block on the
    # database); 0 = pool_size, so a handler never waits for or opens an overflow connection
    # (measured: +35% randomizations/s on PostgreSQL vs anyio's default 40 threads)
    worker_threads: int = Field(default=0, ge=0, le=400)
    # key used to sign exported audit chain heads (HMAC-SHA256); empty = unsigned
    audit_key: str = ""
    # test-only: milliseconds to pause at named points of the allocation transaction
    # ("after_compute", "after_audit", "before_commit"); empty in production
    test_pause_ms: dict[str, int] = {}
    # test-only: a directory whose pause.json overrides test_pause_ms on every call and where
    # a marker file exists while a process is paused (the G3 crash harness); empty in production
    test_pause_dir: str = ""
    # the decision tool's fitted regime (regime-model.json written by `tailor analyze`)
    regime_model: str = ""
    # CDS Hooks: JSON mapping each EHR issuer to its JWK Set or PEM public key (tailor.cds.auth);
    # the public base URL the EHR calls (the JWT audience), default the request's own URL
    cds_issuers: str = ""
    cds_base_url: str = ""
    # the analysis report shown to statisticians (report.html written by `tailor analyze`)
    analysis_report: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
