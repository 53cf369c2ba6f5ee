"""``required_plugins`` in a config: plugins that must be installed (with versions) before anything runs."""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from fpt_bench.api.errors import UserError
from fpt_bench.host.manager import Host


def check_required_plugins(required: list[str], host: Host) -> None:
    installed: dict[str, str] = {}
    for info in host.plugins.values():
        if info.status == "ok":
            for key in {info.name, info.distribution or info.name}:
                installed[canonicalize_name(key)] = info.version or "0"
    problems = []
    for text in required:
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise UserError(f"required_plugins: {text!r} is not a requirement ({exc})") from None
        name = canonicalize_name(req.name)
        if name not in installed:
            problems.append(f"{text} (not installed or not loaded)")
            continue
        try:
            version = Version(installed[name])
        except InvalidVersion:
            problems.append(f"{text} (installed version {installed[name]!r} is not a version)")
            continue
        if req.specifier and version not in req.specifier:
            problems.append(f"{text} (installed: {version})")
    if problems:
        raise UserError("required plugins are missing: " + "; ".join(problems)
                        + ". Install them with pip (see `fpt-bench plugins`)")
