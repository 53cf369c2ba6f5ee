"""Can a pretrained source be loaded here, without waiting on a network that is not there?

A source is a local directory (``save_pretrained`` layout) or a hub id. A hub id loads when its files are in the
Hugging Face cache, or when the hub can be reached. "Can be reached" is asked once per process with one short
TCP connection (to the proxy when one is set), never through the hub client's retry loop, so a machine without
a network learns it in well under a second and hears about it once, in one message that says what to install
or where to put the files.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PROBE_TIMEOUT_S = 1.5


def hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return os.environ.get("HF_HUB_CACHE", "~/.cache/huggingface/hub")


def offline_env() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: the hub is not to be asked."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:  # pragma: no cover
        pass
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _endpoint() -> tuple[str, int]:
    """(host, port) a hub request goes to first: the HTTPS proxy when one is set, else the hub endpoint."""
    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
                  if os.environ.get(v)), "")
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return parts.hostname or "", parts.port or 3128
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parts = urlsplit(endpoint)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


@functools.cache
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached from here (asked once per process), or None when it can."""
    if offline_env():
        return "HF_HUB_OFFLINE is set"
    host, port = _endpoint()
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"no connection to {host}:{port}: {exc.strerror or exc}"


def in_cache(repo_id: str, filenames: tuple[str, ...]) -> bool:
    """Whether any of ``filenames`` of the model ``repo_id`` is in the Hugging Face cache (nothing is fetched)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    for name in filenames:
        try:
            found = try_to_load_from_cache(repo_id, name)
        except Exception:  # noqa: BLE001 - not a valid repo id, an unreadable cache: not cached
            return False
        if isinstance(found, str):
            return True
    return False


def local_problem(folder: Path, needs_weights: bool) -> str | None:
    """What a ``save_pretrained`` folder lacks, or None."""
    if not (folder / CONFIG_FILE).is_file():
        return f"it has no {CONFIG_FILE}"
    if needs_weights and not any((folder / name).is_file() for name in WEIGHT_FILES):
        return f"it has no weights ({' or '.join(WEIGHT_FILES[::2])})"
    return None


def cached(source: str, needs_weights: bool) -> bool:
    """Whether a hub id's config (and weights, when needed) are in the Hugging Face cache."""
    if not in_cache(source, (CONFIG_FILE,)):
        return False
    return not needs_weights or in_cache(source, WEIGHT_FILES)


def unavailable_reason(source: str, needs_weights: bool = True, install: str = "", alternative: str = "") -> \
        str | None:
    """Why ``source`` (a hub id or a local folder) cannot be loaded here, as one message that says what to do;
    None when it can (a complete folder, files in the cache, or a hub that answers).

    ``install``: how to get a packaged copy (e.g. a pip command), said first when given; ``alternative``: what
    else works without these files (e.g. ``weights=random`` for a backbone that needs no config)."""
    folder = Path(source).expanduser()
    then = f". {alternative}" if alternative else ""
    local = f"could not load {'pretrained weights' if needs_weights else 'the model config'} from the local directory"
    if folder.is_dir():
        problem = local_problem(folder, needs_weights)
        if problem is None:
            return None
        return (f"{local} {source}: {problem} (it needs {CONFIG_FILE} and model.safetensors, as save_pretrained "
                f"writes them){then}")
    if source.startswith(("/", "./", "../", "~")) or source.count("/") > 1:  # a path, not a hub id (org/name)
        return f"{local} {source}: no such folder{then}"
    if cached(source, needs_weights):
        return None
    why = hub_unreachable()
    if why is None:
        return None
    cache = hub_cache_dir()
    what = "its weights are not in the Hugging Face cache" if in_cache(source, (CONFIG_FILE,)) \
        else "not in the Hugging Face cache"
    fixes = [install] if install else []
    fixes += [f"where there is internet, run `hf download {source}` and copy its folder "
              f"models--{source.replace('/', '--')} into {cache}",
              "or save the model with save_pretrained into a folder and pass --backbone-args source=/that/folder"]
    text = (f"the model {source!r} is not here ({what} {cache}) and the hub cannot be reached ({why}). "
            f"To get it: " + "; ".join(fixes))
    return text + (f". {alternative}" if alternative else "")


def local_files_only(source: str) -> bool:
    """Load without asking the hub: a local folder, or a hub that cannot be reached (its cached files are used,
    with no retries)."""
    return Path(source).expanduser().is_dir() or hub_unreachable() is not None
