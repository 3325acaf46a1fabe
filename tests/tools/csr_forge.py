#!/usr/bin/env python3
"""csr_forge.py MODE OUT [SUBJECT [PASSWORD]]: a PKCS#10 request (OUT.csr,
PEM; its key OUT.key) encoded as no library writes one, for the CA's checks
of what it signs. Its DER is written here by hand on purpose: BER lengths,
values of the wrong type and unsorted SETs are what the libraries refuse to
produce.

MODE:
  long-length   the CN's value length in long form (0x82 0x00 0x07)
  indefinite    the subject SEQUENCE of indefinite length (BER)
  cn-sequence   the CN's value a SEQUENCE holding a UTF8String
  rsa-no-null   the RSA key's AlgorithmIdentifier without NULL parameters
  subject       SUBJECT in openssl's -subj form (/O=../CN=..), '+' joining
                the values of one RDN, which are written in the order
                given: a multi-valued RDN's SET unsorted, if so given (DER
                sorts it); CN, O and OU, UTF8Strings; PASSWORD, if given,
                as challengePassword
The subject (SUBJECT in mode subject, else CN=MODE-<random>) is printed
on stdout as a line of openssl's -subj form (/CN=...).
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
OID_ATTR = {"CN": OID_CN, "O": bytes.fromhex("060355040a"),
            "OU": bytes.fromhex("060355040b")}
OID_CHALLENGE = bytes.fromhex("06092a864886f70d010907")
OID_RSA = bytes.fromhex("06092a864886f70d010101")
OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")


def name_as_given(subj):
    """/A=x+B=y/C=z as a Name, each RDN's values in the order given."""
    rdns = b""
    for rdn in subj.lstrip("/").split("/"):
        atvs = b""
        for atv in rdn.split("+"):
            typ, value = atv.split("=", 1)
            atvs += tlv(0x30, OID_ATTR[typ] + tlv(0x0C, value.encode()))
        rdns += tlv(0x31, atvs)
    return tlv(0x30, rdns)


def main():
    mode, out = sys.argv[1], sys.argv[2]
    key = rsa.generate_private_key(65537, 2048)
    cn = ("%s-%s" % (mode, os.urandom(4).hex())).encode()
    subj = "/CN=" + cn.decode()
    attrs = b""
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
    elif mode == "subject":
        subj = sys.argv[3]
        name = name_as_given(subj)
        if len(sys.argv) > 4:
            attrs = tlv(0x30, OID_CHALLENGE
                        + tlv(0x31, tlv(0x0C, sys.argv[4].encode())))
    else:
        sys.exit("csr_forge.py: unknown mode %s" % mode)
    info = tlv(0x30, tlv(0x02, b"\x00") + name + spki + tlv(0xA0, attrs))
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
    print(subj)


if __name__ == "__main__":
    main()
