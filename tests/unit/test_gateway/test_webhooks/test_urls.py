import pytest

from gateway.errors import ProblemError
from gateway.webhooks import check_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/hooks",
        "http://localhost/hooks",
        "https://hooks.example.com/hr?x=1",
        "http://[::1]:9000/",
        "http://10.0.0.5/in",
    ],
)
def test_sandbox_accepts_http_and_loopback(url):
    assert check_url(url, environment="sandbox") == url


@pytest.mark.parametrize("url", ["https://hooks.example.com/hr", "https://203.0.113.9:8443/x".replace("203.0.113.9", "8.8.8.8")])
def test_live_accepts_public_https(url):
    assert check_url(url, environment="live") == url


@pytest.mark.parametrize(
    "url",
    [
        "", "hooks.example.com/x", "/relative", "ftp://example.com/x", "https://", "https:///path",
        "https://user:pw@example.com/x", "https://token@example.com/", "https://exa mple.com/",
        "https://example.com/\n", "https://例子.com/", "https://example.com:99999/", "https://example.com:0/",
        "https://example.com/#frag", "https://ex..ample.com/", "https://[zz::1]/", "javascript:alert(1)",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_invalid_urls(url):
    with pytest.raises(ProblemError) as info:
        check_url(url, environment="sandbox")
    assert info.value.code == "invalid_webhook_url" and info.value.status == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # live needs https
        "https://127.0.0.1/x", "https://localhost/x", "https://api.localhost/x", "https://10.1.2.3/x",
        "https://192.168.1.1/x", "https://172.16.0.1/x", "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x", "https://[fe80::1]/x", "https://[::ffff:127.0.0.1]/x", "https://0.0.0.0/x",
    ],
)
def test_live_refuses_plain_http_and_internal_hosts(url):
    with pytest.raises(ProblemError) as info:
        check_url(url, environment="live")
    assert info.value.code == "webhook_url_not_allowed"


def test_a_setting_allows_private_hosts_in_live_but_still_https():
    assert check_url("https://10.1.2.3/x", environment="live", allow_private=True)
    with pytest.raises(ProblemError):
        check_url("http://10.1.2.3/x", environment="live", allow_private=True)
