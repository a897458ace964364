"""Linux user accounts on a node: the pool's ``userAccounts`` and the users added through the node user API.

Used two ways, both as root inside the node container:

* by the agent, which creates the pool's accounts when it registers (:func:`ensure_accounts`), before the start task
  and any task can run as one of them;
* by the emulator through ``docker exec python3 /opt/batchbox/node/_node_users.py``, with the request in the
  ``BATCHBOX_NODE_USER`` environment variable (JSON ``{"action": "add" | "update" | "delete", "name": ...,
  "password": ..., "sshPublicKey": ..., "isAdmin": ..., "expiryDate": "YYYY-MM-DD"}``); the exit code says what
  happened (:data:`EXIT_EXISTS`, :data:`EXIT_NOT_FOUND`, :data:`EXIT_INVALID`).

An admin account is in the ``sudo`` group; a password is set with ``chpasswd`` (from standard input, never on a
command line); an SSH public key goes to ``~/.ssh/authorized_keys``; the expiry is the account's expiration date.
Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EXIT_EXISTS",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "REQUEST_ENV",
    "UserError",
    "add_user",
    "delete_user",
    "ensure_accounts",
    "update_user",
]

REQUEST_ENV = "BATCHBOX_NODE_USER"
EXIT_EXISTS = 3
EXIT_NOT_FOUND = 4
EXIT_INVALID = 5
ADMIN_GROUP = "sudo"
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$", re.IGNORECASE)
_PROTECTED = frozenset({"root", "batchuser", "nobody"})


class UserError(Exception):
    """A request that cannot be done; ``code`` is the exit code the command line answers with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _run(argv: list[str], stdin: str | None = None) -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(EXIT_INVALID, f"{argv[0]} failed: {result.stderr.strip() or result.returncode}")


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name.lower() in _PROTECTED:
        raise UserError(EXIT_INVALID, f"the user name {name!r} cannot be used on a Linux node")


def _set_secrets(name: str, password: str | None, ssh_key: str | None) -> None:
    if password:
        _run(["chpasswd"], stdin=f"{name}:{password}\n")
    else:
        _run(["passwd", "-l", name])
    entry = pwd.getpwnam(name)
    ssh_dir = os.path.join(entry.pw_dir, ".ssh")
    keys = os.path.join(ssh_dir, "authorized_keys")
    if ssh_key:
        os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
        with open(keys, "w", encoding="utf-8") as f:
            f.write(ssh_key.strip() + "\n")
        os.chmod(keys, 0o600)
        for path in (ssh_dir, keys):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    elif os.path.exists(keys):
        os.remove(keys)


def add_user(
    name: str,
    *,
    password: str | None = None,
    ssh_key: str | None = None,
    admin: bool = False,
    expiry_date: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
) -> None:
    """Create a user with a home directory and bash, in ``sudo`` when ``admin`` (with the given uid / gid).

    Raises:
        UserError: the name is taken or invalid, or a command failed.
    """
    _check_name(name)
    if _exists(name):
        raise UserError(EXIT_EXISTS, f"the user {name} already exists")
    argv = ["useradd", "--create-home", "--shell", "/bin/bash"]
    if admin:
        argv += ["--groups", ADMIN_GROUP]
    if expiry_date:
        argv += ["--expiredate", expiry_date]
    if uid is not None:
        argv += ["--uid", str(uid)]
    if gid is not None:
        if subprocess.run(["getent", "group", str(gid)], capture_output=True, check=False).returncode != 0:
            _run(["groupadd", "--gid", str(gid), name])
        argv += ["--gid", str(gid)]
    _run([*argv, name])
    _set_secrets(name, password, ssh_key)


def update_user(name: str, *, password: str | None, ssh_key: str | None, expiry_date: str | None) -> None:
    """Replace a user's password, SSH key and expiry (what is not given is removed or reset).

    Raises:
        UserError: no such user, or a command failed.
    """
    if not _exists(name) or name.lower() in _PROTECTED:
        raise UserError(EXIT_NOT_FOUND, f"the user {name} does not exist")
    _run(["usermod", "--expiredate", expiry_date or "", name])
    _set_secrets(name, password, ssh_key)


def delete_user(name: str) -> None:
    """Remove a user and its home directory.

    Raises:
        UserError: no such user, or a command failed.
    """
    if not _exists(name) or name.lower() in _PROTECTED:
        raise UserError(EXIT_NOT_FOUND, f"the user {name} does not exist")
    _run(["userdel", "--remove", name])


def ensure_accounts(accounts: list[Mapping[str, Any]]) -> list[str]:
    """Create the pool's ``userAccounts`` that do not exist yet; returns one line per account that failed."""
    problems: list[str] = []
    for account in accounts:
        name = str(account.get("name") or "")
        if not name or _exists(name):
            continue
        linux = account.get("linuxUserConfiguration") or {}
        linux = linux if isinstance(linux, Mapping) else {}
        try:
            add_user(
                name,
                password=str(account.get("password") or "") or None,
                ssh_key=None,
                admin=str(account.get("elevationLevel") or "nonadmin").lower() == "admin",
                uid=_opt_int(linux.get("uid")),
                gid=_opt_int(linux.get("gid")),
            )
            if linux.get("sshPrivateKey"):
                _install_private_key(name, str(linux["sshPrivateKey"]))
        except UserError as exc:
            problems.append(f"{name}: {exc}")
    return problems


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _install_private_key(name: str, key: str) -> None:
    entry = pwd.getpwnam(name)
    ssh_dir = os.path.join(entry.pw_dir, ".ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    path = os.path.join(ssh_dir, "id_rsa")
    with open(path, "w", encoding="utf-8") as f:
        f.write(key.strip() + "\n")
    os.chmod(path, 0o600)
    for item in (ssh_dir, path):
        os.chown(item, entry.pw_uid, entry.pw_gid)


def main() -> int:
    """The ``docker exec`` entry point: one request from :data:`REQUEST_ENV`."""
    try:
        request = json.loads(os.environ.get(REQUEST_ENV) or "{}")
        if not isinstance(request, dict):
            raise UserError(EXIT_INVALID, "the request must be a JSON object")
        action, name = str(request.get("action") or ""), str(request.get("name") or "")
        password = request.get("password") or None
        ssh_key = request.get("sshPublicKey") or None
        expiry = request.get("expiryDate") or None
        if action == "add":
            add_user(name, password=password, ssh_key=ssh_key, admin=bool(request.get("isAdmin")), expiry_date=expiry)
        elif action == "update":
            update_user(name, password=password, ssh_key=ssh_key, expiry_date=expiry)
        elif action == "delete":
            delete_user(name)
        else:
            raise UserError(EXIT_INVALID, f"unknown action {action!r}")
    except UserError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except ValueError as exc:
        print(f"bad request: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0


if __name__ == "__main__":
    sys.exit(main())
