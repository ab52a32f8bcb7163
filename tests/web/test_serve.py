"""`ironspire serve` as a user starts it: a real process, the URL it prints, loopback by default."""

from __future__ import annotations

from pathlib import Path

import httpx

from support.serve_process import serving


def test_serve_prints_a_url_whose_token_signs_the_browser_in(tmp_path: Path) -> None:
    with serving(tmp_path / "home") as s:
        assert s.url.startswith(f"http://127.0.0.1:{s.port}/?token=") and len(s.token) >= 40
        assert not any("warning" in line for line in s.errors)
        with httpx.Client(base_url=s.base, trust_env=False) as browser:
            assert browser.get("/settings/providers").status_code == 401
            signed_in = browser.get(s.url, follow_redirects=True)
            assert signed_in.status_code == 200 and "Settings" in signed_in.text
            assert browser.get("/api/providers").status_code == 200  # the cookie carries on
        with s.client() as script:
            assert len(script.get("/api/providers").json()) == 13


def test_another_host_must_be_asked_for_and_warns(tmp_path: Path) -> None:
    with serving(tmp_path / "home", host="0.0.0.0") as s:
        assert any("not on loopback" in line and "keep it private" in line for line in s.errors)
        with s.client() as script:
            assert script.get("/api/default").status_code == 200


def test_a_new_launch_has_a_new_token(tmp_path: Path) -> None:
    with serving(tmp_path / "home") as first:
        old = first.token
    with serving(tmp_path / "home") as second:
        assert second.token != old
        with httpx.Client(base_url=second.base, trust_env=False) as browser:
            assert browser.get(f"/?token={old}").status_code == 401
