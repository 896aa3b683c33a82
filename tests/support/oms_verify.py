#!/usr/bin/env python3
"""An independent OMS v1.0 verifier (key method, files serialization) for Ticket Lab's tests.

Written apart from core/bundle/oms.ts, with Python's `cryptography` and the standard library only,
so that our model.sig is checked by code that is not ours (../shared/interop/oms/FORMAT.md):

  python3 tests/support/oms_verify.py FOLDER --signature model.sig --key PUB.pem [--ignore-paths P ...]

Prints OK and exits 0, or prints the reason and exits 1.
"""
import argparse
import base64
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

HASH_BY_CURVE = {'secp256r1': hashes.SHA256, 'secp384r1': hashes.SHA384, 'secp521r1': hashes.SHA512}


class Rejected(Exception):
    pass


def verified_statement(bundle, key):
    """The statement of the bundle's DSSE envelope, once one of its signatures verifies over the PAE."""
    if not bundle['mediaType'].startswith('application/vnd.dev.sigstore.bundle'):
        raise Rejected(f"not a Sigstore bundle: mediaType {bundle['mediaType']}")
    envelope = bundle['dsseEnvelope']
    payload_type = envelope['payloadType'].encode()
    if payload_type != b'application/vnd.in-toto+json':
        raise Rejected(f'payloadType {payload_type!r} is not in-toto')
    payload = base64.b64decode(envelope['payload'], validate=True)
    pae = b'DSSEv1 %d %s %d %s' % (len(payload_type), payload_type, len(payload), payload)
    algorithm = ec.ECDSA(HASH_BY_CURVE[key.curve.name]())
    for signature in envelope['signatures']:
        try:
            key.verify(base64.b64decode(signature['sig'], validate=True), pae, algorithm)
            break
        except InvalidSignature:
            continue
    else:
        raise Rejected('the DSSE signature does not verify with the key')
    statement = json.loads(payload)
    if statement['_type'] != 'https://in-toto.io/Statement/v1' or statement['predicateType'] != 'https://model_signing/signature/v1.0':
        raise Rejected('not an OMS v1.0 statement')
    return statement


def digests_in_scope(folder, ignored):
    """SHA-256 of every regular file under folder, by '/'-separated relative path, minus ignored paths."""
    found = {}
    for top, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            rel = os.path.relpath(path, folder).replace(os.sep, '/')
            if any(rel == p or rel.startswith(p + '/') for p in ignored):
                if name in dirs:
                    dirs.remove(name)
                continue
            if os.path.islink(path):
                raise Rejected(f'{rel} is a symbolic link')
            if name in files:
                with open(path, 'rb') as f:
                    found[rel] = hashlib.sha256(f.read()).hexdigest()
    return found


def verify(folder, signature_path, key_path, ignore_paths):
    with open(signature_path, 'rb') as f:
        bundle = json.load(f)
    with open(key_path, 'rb') as f:
        key = load_pem_public_key(f.read())
    predicate = verified_statement(bundle, key)['predicate']
    serialization = predicate['serialization']
    if serialization['method'] != 'files' or serialization['hash_type'] != 'sha256':
        raise Rejected(f"unsupported serialization {serialization['method']}/{serialization['hash_type']}")
    signed = {r['name']: r['digest'] for r in predicate['resources']}
    ignored = ignore_paths + serialization.get('ignore_paths', []) + [os.path.abspath(signature_path)]
    ignored = [os.path.relpath(os.path.join(folder, p), folder).replace(os.sep, '/') for p in ignored]
    found = digests_in_scope(folder, ignored)
    for name, digest in sorted(signed.items()):
        if name not in found:
            raise Rejected(f'{name} is signed but missing')
        if found[name] != digest:
            raise Rejected(f'{name} does not match its digest')
    unsigned = sorted(found.keys() - signed.keys())
    if unsigned:
        raise Rejected(f'{unsigned[0]} is not signed')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folder')
    parser.add_argument('--signature', required=True)
    parser.add_argument('--key', required=True, help='the public key, PEM')
    parser.add_argument('--ignore-paths', nargs='*', default=[])
    args = parser.parse_args()
    try:
        verify(os.path.abspath(args.folder), args.signature, args.key, args.ignore_paths)
    except (Rejected, KeyError, TypeError, ValueError) as error:
        print(f'REJECTED: {type(error).__name__}: {error}')
        return 1
    print('OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())
