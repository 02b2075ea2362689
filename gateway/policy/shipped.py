"""The policy versions shipped with the gateway: ``gateway/policy/data/<region>.json``.

One file per region: its names and its versions, numbered 1..n in date order. The
files are read once per process and checked with the same rules as an
administrator's version, so a bad figure in a release fails loudly at the first
lookup (and in the tests), never silently in a calculation.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Annotated

import msgspec
from stdnum import numdb

from ..errors import ProblemError
from .model import PolicyTerms, PolicyVersion, check_terms

__all__ = ["PolicyDataError", "RegionName", "ShippedRegion", "region_name", "shipped_regions"]


class PolicyDataError(RuntimeError):
    """A shipped data file is malformed or contradicts itself."""


class RegionName(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    zh: str
    en: str | None = None


class _ShippedVersion(PolicyTerms, frozen=True, kw_only=True):
    version: Annotated[int, msgspec.Meta(ge=1)]


class _RegionFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    region: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
    name: RegionName
    versions: Annotated[list[_ShippedVersion], msgspec.Meta(min_length=1)]


class ShippedRegion(msgspec.Struct, frozen=True):
    region: str
    name: RegionName
    versions: tuple[PolicyVersion, ...]


@functools.cache
def shipped_regions() -> dict[str, ShippedRegion]:
    """Every shipped region by code (read once per process)."""
    regions: dict[str, ShippedRegion] = {}
    for entry in sorted(files(__package__).joinpath("data").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            region = _load(entry.name, entry.read_bytes())
            regions[region.region] = region
    return regions


def _load(name: str, raw: bytes) -> ShippedRegion:
    try:
        doc = msgspec.json.decode(raw, type=_RegionFile)
    except msgspec.ValidationError as exc:
        raise PolicyDataError(f"policy data {name}: {exc}") from None
    if name != f"{doc.region}.json":
        raise PolicyDataError(f"policy data {name}: holds region {doc.region}; the file must be named {doc.region}.json")
    versions = []
    for i, shipped in enumerate(doc.versions):
        try:
            shipped = check_terms(shipped)
        except ProblemError as exc:
            raise PolicyDataError(f"policy data {name}: version {shipped.version}: {exc}") from None
        if shipped.version != i + 1:
            raise PolicyDataError(f"policy data {name}: versions must be numbered 1..n in order, found {shipped.version}")
        if i and shipped.effective_from <= doc.versions[i - 1].effective_from:
            raise PolicyDataError(f"policy data {name}: version {shipped.version} must start after version {i}")
        fields = {f: getattr(shipped, f) for f in PolicyTerms.__struct_fields__}
        versions.append(PolicyVersion(**fields, region=doc.region, version=shipped.version, origin="shipped"))
    return ShippedRegion(doc.region, doc.name, tuple(versions))


def region_name(code: str) -> RegionName | None:
    """The shipped names, or else the Chinese name from python-stdnum's division list
    (a region served only by a configured bureau), or ``None`` for an unknown code."""
    shipped = shipped_regions().get(code)
    if shipped is not None:
        return shipped.name
    return _division_name(code)


@functools.lru_cache(maxsize=1024)
def _division_name(code: str) -> RegionName | None:
    parts = numdb.get("cn/loc").info(code)
    names = [value for _, props in parts for key, value in props.items() if key in ("province", "county")]
    if len(names) < 2:
        return None
    province, city = names[0], names[-1]
    # Municipalities list their city-level code as "市辖区" (the urban districts).
    return RegionName(zh=province if city in ("市辖区", "县") else city)
