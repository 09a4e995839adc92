"""lifelog.core.urls: the one check of a server's URL (settings, devices, the HTTP transport)."""

from __future__ import annotations

import pytest

from lifelog.core.urls import BadURL, http_url


@pytest.mark.parametrize("url", ["http://127.0.0.1:5600", "https://aw.example", "http://[::1]:5600/x",
                                 "http://user:pw@host:1"])
def test_an_http_url_with_a_host_is_split(url):
    assert http_url(url).hostname


@pytest.mark.parametrize("url, bad_port", [
    ("ftp://host", False), ("127.0.0.1:5600", False), ("http://", False), ("http:///path", False),
    ("", False), ("http://[::1", False),  # urlsplit itself raises for the unclosed bracket
    ("http://host:99999", True), ("http://host:port", True),
])
def test_anything_else_is_a_bad_url_telling_a_bad_port_apart(url, bad_port):
    with pytest.raises(BadURL) as caught:
        http_url(url)
    assert caught.value.bad_port is bad_port
    assert isinstance(caught.value, ValueError)


def test_an_unsplittable_url_is_a_usage_error_not_a_traceback():
    # Before the one check, settings let urlsplit's own ValueError through (exit 1, no culprit).
    from lifelog.core.errors import UsageError
    from lifelog.core.settings import load_settings

    with pytest.raises(UsageError, match=r"LIFELOG_AW_URL: setting aw_url must be an http:// or https:// URL"):
        load_settings(environ={"LIFELOG_AW_URL": "http://[::1"})
