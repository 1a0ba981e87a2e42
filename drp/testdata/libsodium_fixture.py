"""Writes libsodium.json: a DRP pair-wise key set-up message signed by libsodium itself
(crypto_sign, "combined mode": the 64-byte signature, then the message), base64 encoded as DRP
agents send it, with the verify key in base64. The drp tests check that erasure accepts it.

Run with python3 and the system's libsodium (libsodium23): python3 libsodium_fixture.py
"""
import base64
import ctypes
import ctypes.util
import json

sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
assert sodium.sodium_init() >= 0
sodium.sodium_version_string.restype = ctypes.c_char_p

seed = bytes(range(32))  # a fixed key, so that the fixture is reproducible
pk = ctypes.create_string_buffer(32)
sk = ctypes.create_string_buffer(64)
assert sodium.crypto_sign_seed_keypair(pk, sk, seed) == 0

message = json.dumps({
    "agent-id": "LIBSODIUM_AGENT",
    "business-id": "ACME_CORP",
    "issued-at": "2026-03-01T12:00:00.000000+00:00",
    "expires-at": "2026-03-01T12:10:00.000000+00:00",
    "drp.version": "0.9.4",
}).encode()
signed = ctypes.create_string_buffer(64 + len(message))
signed_len = ctypes.c_ulonglong()
assert sodium.crypto_sign(signed, ctypes.byref(signed_len), message, ctypes.c_ulonglong(len(message)), sk) == 0

with open("libsodium.json", "w") as f:
    json.dump({
        "libsodium": sodium.sodium_version_string().decode(),
        "verify_key": base64.b64encode(pk.raw).decode(),
        "signed": base64.b64encode(signed.raw[: signed_len.value]).decode(),
    }, f, indent=2)
    f.write("\n")
