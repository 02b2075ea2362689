import pytest

from adapters.social_security import JsonHmacBureauAdapter
from gateway.config import ConfigError, UpstreamSettings
from gateway.registry import adapter_classes, build_upstream_set


def test_builtin_adapters_come_from_entry_points():
    assert adapter_classes()["json-hmac"] is JsonHmacBureauAdapter


def _upstream(name, region, adapter="json-hmac", **kw):
    return UpstreamSettings(name, adapter, "http://127.0.0.1:9", (region,), {"app_id": "a", "app_secret": "s"}, kw)


def test_routing_by_region():
    upstreams = build_upstream_set("live", [_upstream("gz", "440100"), _upstream("sz", "440300")])
    assert upstreams.bureau_for("440100").name == "gz"
    assert upstreams.regions() == ["440100", "440300"]
    assert upstreams.bureau_for("110100") is None


@pytest.mark.parametrize(
    ("upstreams", "message"),
    [
        ([_upstream("a", "440100", adapter="nope")], "no adapter 'nope'"),
        ([_upstream("a", "440100"), _upstream("b", "440100")], "two bureaus"),
        ([_upstream("a", "440100"), _upstream("a", "440300")], "two upstreams"),
        ([UpstreamSettings("a", "json-hmac", "http://x", ("440100",), {})], "missing credentials"),
        ([_upstream("a", "440100", policy={"retry": {"max_atempts": 2}})], "max_atempts"),
        ([UpstreamSettings("a", "json-hmac", "http://x", ("440100", "440300"), {"app_id": "a", "app_secret": "s"})],
         "exactly one region"),
    ],
)
def test_configuration_mistakes_are_caught_at_start(upstreams, message):
    with pytest.raises(ConfigError, match=message):
        build_upstream_set("live", upstreams)
