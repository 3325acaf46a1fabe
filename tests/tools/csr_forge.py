#!/usr/bin/env python3
"""csr_forge.py MODE OUT: a PKCS#10 request (OUT.csr, PEM; its key OUT.key)
encoded as no library writes one, for the CA's checks of what it signs.
Its DER is written here by hand on purpose: BER lengths, values of the
wrong type and unsorted SETs are what the libraries refuse to produce.

MODE:
  long-length   the CN's value length in long form (0x82 0x00 0x07)
  indefinite    the subject SEQUENCE of indefinite length (BER)
  cn-sequence   the CN's value a SEQUENCE holding a UTF8String
  rsa-no-null   the RSA key's AlgorithmIdentifier without NULL parameters
The subject is CN=MODE-<random>, printed on stdout as a line of openssl's
-subj form (/CN=...).
"""
import base64
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def tlv(tag, body, length_bytes=None):
    n = len(body)
    if length_bytes is not None:
        head = bytes([0x80 | length_bytes]) + n.to_bytes(length_bytes, "big")
    elif n < 128:
        head = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + head + body


OID_CN = bytes.fromhex("0603550403")
OID_RSA = bytes.fromhex("06092a864886f70d010101")
OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")


def main():
    mode, out = sys.argv[1], sys.argv[2]
    key = rsa.generate_private_key(65537, 2048)
    cn = ("%s-%s" % (mode, os.urandom(4).hex())).encode()
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    atv = tlv(0x30, OID_CN + tlv(0x0C, cn))
    name = tlv(0x30, tlv(0x31, atv))
    if mode == "long-length":
        name = tlv(0x30, tlv(0x31, tlv(0x30, OID_CN + tlv(0x0C, cn, 2))))
    elif mode == "indefinite":
        name = b"\x30\x80" + tlv(0x31, atv) + b"\x00\x00"
    elif mode == "cn-sequence":
        name = tlv(0x30, tlv(0x31, tlv(0x30, OID_CN + tlv(0x30, tlv(0x0C, cn)))))
    elif mode == "rsa-no-null":
        pkcs1 = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        spki = tlv(0x30, tlv(0x30, OID_RSA) + tlv(0x03, b"\x00" + pkcs1))
    else:
        sys.exit("csr_forge.py: unknown mode %s" % mode)
    info = tlv(0x30, tlv(0x02, b"\x00") + name + spki + tlv(0xA0, b""))
    sig = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    req = tlv(0x30, info + tlv(0x30, OID_SHA256_RSA + tlv(0x05, b""))
              + tlv(0x03, b"\x00" + sig))
    with open(out + ".csr", "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE REQUEST-----\n"
                + base64.encodebytes(req)
                + b"-----END CERTIFICATE REQUEST-----\n")
    with open(out + ".key", "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    print("/CN=" + cn.decode())


if __name__ == "__main__":
    main()
