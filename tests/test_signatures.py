"""TimedPayloads accepts exactly what itsdangerous accepts, for Flask's and Flask-WTF's serializers."""

import functools
import hashlib
import random
import time

import pytest
from flask.sessions import session_json_serializer
from itsdangerous import BadData, URLSafeTimedSerializer

from luffy.signatures import TimedPayloads

SESSION_KWARGS = {
    "salt": "cookie-session",
    "serializer": session_json_serializer,
    "signer_kwargs": {"key_derivation": "hmac", "digest_method": hashlib.sha1},
}


def session_serializer(keys):
    return URLSafeTimedSerializer(keys, **SESSION_KWARGS)


def csrf_serializer(key):
    return URLSafeTimedSerializer(key, salt="wtf-csrf-token")


def reference(serializer, signed, max_age):
    try:
        return serializer.loads(signed, max_age=max_age)
    except BadData:
        return None


def signed_at(serializer, value, moment):
    signer = serializer.make_signer()
    signer.get_timestamp = lambda: int(moment)
    return signer.sign(serializer.dump_payload(value)).decode()


def mutations(signed, rng):
    """The signed value, and damaged copies of it: each character changed, cut, or extended."""
    yield signed
    for _ in range(60):
        i = rng.randrange(len(signed))
        yield signed[:i] + rng.choice("ABCxyz019-_.=") + signed[i + 1 :]
    for cut in (1, 5, 27, len(signed) // 2):
        yield signed[:-cut]
        yield signed[cut:]
    yield signed + "."
    yield "." + signed
    yield signed.replace(".", "")
    yield signed + "x"
    yield ""
    yield "...."
    yield "a.b.c"
    yield "é" + signed


SESSIONS = [
    {"_user_id": "42", "_fresh": True, "csrf_token": "f" * 40},
    {"_user_id": "7", "csrf_token": "a" * 40, "big": "x" * 2000},  # compressed (a leading ".")
    {"_user_id": "9", "when": (1, 2), "raw": b"\x00\xff"},  # tagged JSON values
]


@pytest.mark.parametrize("session", SESSIONS)
def test_session_cookies_verdicts_match_itsdangerous(session):
    rng = random.Random(1)
    serializer = session_serializer(["old-key", "current-key"])
    fast = TimedPayloads(serializer)
    assert fast.exact
    now = time.time()
    candidates = [
        serializer.dumps(session),
        session_serializer(["old-key"]).dumps(session),  # signed with a fallback key: valid
        session_serializer(["another-key"]).dumps(session),  # a key we never had: invalid
        URLSafeTimedSerializer("current-key", **{**SESSION_KWARGS, "salt": "other-salt"}).dumps(
            session
        ),
        signed_at(serializer, session, now - 3599),
        signed_at(serializer, session, now - 3601),  # too old
        signed_at(serializer, session, now + 120),  # from the future
    ]
    checked = 0
    for candidate in candidates:
        for signed in mutations(candidate, rng):
            for max_age in (3600, None):
                assert fast.loads(signed, max_age=max_age) == reference(
                    serializer, signed, max_age
                ), signed
                checked += 1
    assert checked > 500
    assert fast.loads(candidates[0], max_age=3600) == session  # the positive case is really reached
    assert fast.loads(candidates[1], max_age=3600) == session
    assert fast.loads(candidates[5], max_age=3600) is None
    assert fast.loads(candidates[5], max_age=None) == session


def test_csrf_tokens_verdicts_match_itsdangerous():
    rng = random.Random(2)
    serializer = csrf_serializer("secret")
    fast = TimedPayloads(serializer)
    assert fast.exact
    raw = hashlib.sha1(b"raw").hexdigest()
    now = time.time()
    for candidate in (
        serializer.dumps(raw),
        csrf_serializer("other").dumps(raw),
        signed_at(serializer, raw, now - 10),
        signed_at(serializer, raw, now - 4000),
        signed_at(serializer, raw, now + 5),
    ):
        for signed in mutations(candidate, rng):
            for max_age in (3600, None):
                assert fast.loads(signed, max_age=max_age) == reference(
                    serializer, signed, max_age
                ), signed
    assert fast.loads(serializer.dumps(raw), max_age=3600) == raw


def test_other_signers_are_left_to_itsdangerous():
    serializer = URLSafeTimedSerializer(
        "k", salt="s", fallback_signers=[{"digest_method": hashlib.sha256}]
    )
    fast = TimedPayloads(serializer)
    assert not fast.exact
    other = URLSafeTimedSerializer("k", salt="s", signer_kwargs={"digest_method": hashlib.sha256})
    assert fast.loads(other.dumps("v"), max_age=60) == "v"
    assert fast.loads(other.dumps("v") + "x", max_age=60) is None


def test_a_signed_timestamp_no_date_can_hold_is_refused():
    serializer = session_serializer(["current-key"])
    fast = TimedPayloads(serializer)
    far = signed_at(serializer, {"_user_id": "1"}, 10**12)  # the year 33658
    for max_age in (None, 3600):
        with pytest.raises(Exception):  # itsdangerous: ValueError/OverflowError, not BadData
            serializer.loads(far, max_age=max_age)
        assert fast.loads(far, max_age=max_age) is None


@pytest.mark.parametrize(
    "digest, exact",
    [
        (hashlib.sha256, True),
        ("sha256", False),  # a name, not a constructor: itsdangerous checks it itself
        (functools.partial(hashlib.blake2b, digest_size=32), False),  # parameters a name would lose
    ],
)
def test_other_digests_are_matched_or_left_to_itsdangerous(digest, exact):
    serializer = URLSafeTimedSerializer(
        "k", salt="s", signer_kwargs={"key_derivation": "hmac", "digest_method": digest}
    )
    fast = TimedPayloads(serializer)
    assert fast.exact is exact
    signed = serializer.dumps({"v": 1})
    assert fast.loads(signed, max_age=60) == {"v": 1}
    assert fast.loads(signed[:-1] + ("A" if signed[-1] != "A" else "B"), max_age=60) is None
