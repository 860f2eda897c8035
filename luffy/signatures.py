"""itsdangerous timed signatures checked with keys derived once: the flash-sale gate's hot path.

``URLSafeTimedSerializer.loads`` builds a signer and derives its key (one more HMAC) on every
call, through several layers of Python: about 10 µs for a session cookie and as much for a
CSRF token, a sixth of a buy request's own work. ``TimedPayloads`` wraps a serializer built
the usual way (Flask's session serializer, Flask-WTF's token serializer) and does the same
checks in a few lines: the signature over ``payload.timestamp`` with each secret key, newest
first (itsdangerous derives the keys, once); then the age, neither above ``max_age`` nor
negative. The payload is decoded by the serializer itself (compression, tagged JSON).
``loads`` returns None wherever itsdangerous would refuse the value (``BadData``, or an error
for a timestamp no date can hold); a setup it cannot match exactly (fallback signers, another
algorithm, a digest hashlib cannot name) is left to itsdangerous.
"""

import hmac

from itsdangerous import BadData, TimestampSigner
from itsdangerous.encoding import base64_decode, bytes_to_int
from itsdangerous.signer import HMACAlgorithm


class TimedPayloads:
    def __init__(self, serializer):
        self.serializer = serializer
        signers = list(serializer.iter_unsigners())
        self.signer = signer = signers[0]
        # Anything but one HMAC timestamp signer (fallback signers, another algorithm, a digest
        # that hashlib cannot name) is left to itsdangerous itself.
        self.exact = (
            len(signers) == 1
            and type(signer) is TimestampSigner
            and type(signer.algorithm) is HMACAlgorithm
        )
        if self.exact:
            self.sep = signer.sep.encode() if isinstance(signer.sep, str) else signer.sep
            self.keys = [signer.derive_key(key) for key in reversed(signer.secret_keys)]
            # By name: hmac.digest then runs in OpenSSL in one call (itsdangerous's default sha1
            # is a Python function, which sends hmac down its slow pure-Python path).
            self.digest = digest_name(signer.algorithm)
            self.exact = self.digest is not None

    def loads(self, signed, max_age=None):
        """The payload of ``signed`` if its signature holds and it is not too old, else None."""
        if not self.exact:
            try:
                return self.serializer.loads(signed, max_age=max_age)
            except Exception:  # BadData, or an impossible date: the caller refuses either way
                return None
        try:
            signed = signed.encode() if isinstance(signed, str) else signed
            value, sep, signature = signed.rpartition(self.sep)
            payload, sep_ts, timestamp = value.rpartition(self.sep)
            if not (sep and sep_ts):
                return None
            signature = base64_decode(signature)
            signed_at = bytes_to_int(base64_decode(timestamp))
        except Exception:  # not text, bad base64, a timestamp longer than 8 bytes
            return None
        if not any(
            hmac.compare_digest(hmac.digest(key, value, self.digest), signature)
            for key in self.keys
        ):
            return None
        try:
            self.signer.timestamp_to_datetime(
                signed_at
            )  # itsdangerous refuses a date it cannot hold
        except (ValueError, OSError, OverflowError):
            return None
        if max_age is not None:
            age = self.signer.get_timestamp() - signed_at
            if age > max_age or age < 0:
                return None
        try:
            return self.serializer.load_payload(payload)
        except BadData:
            return None


def digest_name(algorithm):
    """The hashlib name of an HMAC algorithm's digest, if hmac.digest by that name gives the
    very same signatures (a digest with parameters or an unknown object does not)."""
    try:
        name = algorithm.digest_method().name
        probe = b"luffy"
        if hmac.digest(probe, probe, name) == algorithm.get_signature(probe, probe):
            return name
    except (AttributeError, TypeError, ValueError):
        pass
    return None
