"""The fakes and signers themselves: they must sign and refuse exactly as the platforms do, or
the tests built on them prove nothing."""

from __future__ import annotations

import json
import time
import urllib.request

import httpx
from nacl.signing import SigningKey
from slack_sdk.signature import SignatureVerifier

from tests.fakes import FakeDiscord, FakeSlack, discord_sign, slack_headers, slack_signature


def test_slack_signature_is_what_slack_sdk_verifies():
    body = "token=x&team_id=T1&command=%2Fdeflation&text=price+gpt-4o"
    stamp = str(int(time.time()))
    verifier = SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5")
    assert slack_signature("8f742231b10e8888abcd99yyyzzz85a5", stamp, body) == verifier.generate_signature(timestamp=stamp, body=body)
    assert verifier.is_valid_request(body, slack_headers("8f742231b10e8888abcd99yyyzzz85a5", body))
    assert not verifier.is_valid_request(body, slack_headers("another-secret", body))
    assert not verifier.is_valid_request(body, slack_headers("8f742231b10e8888abcd99yyyzzz85a5", body, int(time.time()) - 600))


def test_slack_signature_known_vector():
    # HMAC-SHA256 of "v0:1531420618:hello" under "secret", computed independently
    import hashlib
    import hmac

    expected = "v0=" + hmac.new(b"secret", b"v0:1531420618:hello", hashlib.sha256).hexdigest()
    assert slack_signature("secret", 1531420618, b"hello") == expected


def test_discord_sign_verifies_with_the_public_key():
    key = SigningKey.generate()
    signature = discord_sign(key, "123", b"{}")
    key.verify_key.verify(b"123{}", bytes.fromhex(signature))
    assert discord_sign(key.encode(), "123", "{}") == signature == discord_sign(key.encode().hex(), "123", b"{}")


def _slack_call(fake: FakeSlack, method: str, token: str | None = "xoxb-test-token", **body) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(fake.api_url + method, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_fake_slack_checks_tokens_blocks_and_channels():
    with FakeSlack(channels={"C1"}) as fake:
        assert _slack_call(fake, "auth.test")["user_id"] == "U0BOT"
        assert _slack_call(fake, "auth.test", token=None)["error"] == "not_authed"
        assert _slack_call(fake, "auth.test", token="xoxb-other")["error"] == "invalid_auth"
        assert _slack_call(fake, "chat.postMessage", channel="C2", text="x")["error"] == "channel_not_found"
        too_many = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51
        answer = _slack_call(fake, "chat.postMessage", channel="C1", text="x", blocks=too_many)
        assert answer["error"] == "invalid_blocks" and "51 blocks" in answer["errors"][0]
        long_header = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
        assert _slack_call(fake, "chat.postMessage", channel="C1", blocks=long_header)["error"] == "invalid_blocks"
        assert fake.messages("C1") == []


def test_fake_slack_gives_unique_ts_and_metadata_only_when_asked():
    with FakeSlack() as fake:
        metadata = {"event_type": "e", "event_payload": {"key": "k"}}
        stamps = [_slack_call(fake, "chat.postMessage", channel="C1", text=str(i), metadata=metadata)["ts"] for i in range(5)]
        assert len(set(stamps)) == 5 and stamps == sorted(stamps)
        plain = _slack_call(fake, "conversations.history", channel="C1")["messages"]
        full = _slack_call(fake, "conversations.history", channel="C1", include_all_metadata=True, limit=2)
        assert "metadata" not in plain[0] and [m["text"] for m in plain] == ["4", "3", "2", "1", "0"]
        assert full["messages"][0]["metadata"] == metadata and full["has_more"] is True


def test_fake_slack_scripts_answers_for_the_next_calls_only():
    with FakeSlack() as fake:
        fake.fail_with("fatal_error", times=2, route="auth.test", after=1)
        results = [_slack_call(fake, "auth.test").get("error") for _ in range(4)]
        assert results == [None, "fatal_error", "fatal_error", None]
        assert [c.scripted for c in fake.calls] == [False, True, True, False]


def test_fake_discord_dedupes_only_with_enforce_nonce():
    with FakeDiscord() as fake:
        url = f"{fake.api_url}/channels/1/messages"
        headers = {"Authorization": "Bot bot-test-token"}
        with httpx.Client() as client:
            a = client.post(url, headers=headers, json={"content": "a", "nonce": "n1", "enforce_nonce": True}).json()
            b = client.post(url, headers=headers, json={"content": "a", "nonce": "n1", "enforce_nonce": True}).json()
            c = client.post(url, headers=headers, json={"content": "a", "nonce": "n2"}).json()
            d = client.post(url, headers=headers, json={"content": "a", "nonce": "n2"}).json()
            assert a["id"] == b["id"] and c["id"] != d["id"]
            assert len(fake.messages["1"]) == 3
            long_nonce = client.post(url, headers=headers, json={"content": "a", "nonce": "x" * 26})
            assert long_nonce.status_code == 400


def test_fake_discord_enforces_embed_limits_and_empty_messages():
    with FakeDiscord() as fake, httpx.Client() as client:
        url = f"{fake.api_url}/channels/1/messages"
        headers = {"Authorization": "Bot bot-test-token"}
        big = [{"description": "x" * 4000}, {"description": "y" * 2001}]
        answer = client.post(url, headers=headers, json={"embeds": big})
        assert answer.status_code == 400 and "over 6000" in json.dumps(answer.json())
        assert client.post(url, headers=headers, json={"embeds": [{"title": "t" * 257}]}).status_code == 400
        assert client.post(url, headers=headers, json={"embeds": [{"fields": [{"name": "", "value": "v"}]}]}).status_code == 400
        assert client.post(url, headers=headers, json={"content": "x" * 2001}).status_code == 400
        assert client.post(url, headers=headers, json={}).json()["code"] == 50006
        assert "1" not in fake.messages


def test_fake_discord_webhook_without_wait_answers_204():
    with FakeDiscord() as fake, httpx.Client() as client:
        assert client.post(fake.webhook_url(), json={"content": "hi"}).status_code == 204
        assert client.post(fake.webhook_url() + "?wait=true", json={"content": "hi"}).json()["webhook_id"]


def test_fake_discord_checks_command_definitions():
    with FakeDiscord() as fake, httpx.Client() as client:
        url = f"{fake.api_url}/applications/{fake.application_id}/commands"
        headers = {"Authorization": "Bot bot-test-token"}
        bad = [{"name": "Deflation", "description": "", "options": [{"type": 3, "name": "a", "description": "a"}, {"type": 3, "name": "b", "description": "b", "required": True}]}]
        errors = client.put(url, headers=headers, json=bad).json()["errors"]
        assert any("bad name" in e for e in errors) and any("description" in e for e in errors)
        assert any("required option after an optional one" in e for e in errors)
        assert client.put(f"{fake.api_url}/applications/999/commands", headers=headers, json=[]).status_code == 403
